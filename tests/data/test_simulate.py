import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from car.alerts import DataError, build_alert_table
from car.data.simulate import (
    ATTRIBUTES,
    CSV_COLUMNS,
    DEFAULTS,
    LABEL_COLUMNS,
    ROLES,
    STAGES,
    load_enterprise_sim,
    planted_patterns,
    simulate_enterprise,
    write_simulation,
)

CONFIG = Path(__file__).resolve().parents[2] / "conf" / "data" / "enterprise_sim.yaml"


@pytest.fixture(scope="module")
def sim():
    return simulate_enterprise()


@pytest.fixture(scope="module")
def attacks(sim):
    return sim.alerts[sim.alerts["label_attack"] == 1]


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """AP with tied scores as one threshold (as scikit-learn)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(y)[last]
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * tp / (last + 1)))


def test_labels_and_annotations_agree(sim):
    a = sim.alerts
    attack = a["label_attack"].to_numpy() == 1
    assert list(a.columns) == CSV_COLUMNS
    assert 0 < attack.sum() < len(a)
    assert (a["campaign"][attack] != "").all() and (a["campaign"][~attack] == "").all()
    assert (a["step"][attack] >= 0).all() and (a["step"][~attack] == -1).all()
    assert a["stage"][attack].isin(STAGES[1:]).all() and (a["stage"][~attack] == "").all()
    assert (a["template"][attack] >= 0).all() and (a["template"][~attack] == -1).all()
    assert set(a["stage"][attack]) == set(STAGES[1:])


def test_every_campaign_runs_its_template_in_order(sim, attacks):
    for campaign, run in attacks.groupby("campaign", observed=True):
        pattern = sim.patterns[run["template"].iloc[0]]
        assert run["template"].nunique() == 1, campaign
        assert run["step"].is_monotonic_increasing, campaign  # the frame is in time order
        assert set(run["step"]) == set(range(len(pattern))), campaign
        types = run["type"].astype(str).tolist()
        collapsed = tuple(t for i, t in enumerate(types) if i == 0 or t != types[i - 1])
        assert collapsed == pattern, campaign
    runs = attacks.groupby("template")["campaign"].nunique()
    assert len(runs) == len(sim.patterns) and (runs >= 5).all()
    assert (attacks.groupby("template")["host"].nunique() >= 3).all()  # runs on different hosts


def test_campaigns_move_between_hosts(attacks):
    hosts_per_run = attacks.groupby("campaign", observed=True)["host"].nunique()
    assert (hosts_per_run > 1).mean() > 0.5
    lateral = attacks[attacks["stage"] == "lateral"]
    before = attacks[attacks["stage"] != "lateral"].groupby("campaign", observed=True)["host"].first()
    assert (lateral["host"].astype(str).to_numpy() != lateral["campaign"].map(before).astype(str).to_numpy()).mean() > 0.5


def test_planted_patterns(sim):
    assert planted_patterns(0) == sim.patterns
    assert len(set(sim.patterns)) == DEFAULTS["n_campaigns"]
    assert all(3 <= len(p) <= DEFAULTS["pattern_length"] for p in sim.patterns)
    assert all(a != b for p in sim.patterns for a, b in zip(p, p[1:]))
    assert all(len(p) == 3 for p in planted_patterns(1, pattern_length=3))
    assert len(planted_patterns(0, n_campaigns=8)) == 8
    assert planted_patterns(1) != planted_patterns(2)


def test_attack_types_are_not_unique_to_attacks(sim, attacks):
    noise_counts = sim.alerts.loc[sim.alerts["label_attack"] == 0, "type"].value_counts()
    attack_types = attacks["type"].astype(str).unique()
    assert (noise_counts[attack_types] > 0).mean() >= 0.9
    assert (noise_counts[attack_types] > attacks["type"].value_counts()[attack_types]).any()
    rare_benign = noise_counts[(noise_counts > 0) & (noise_counts <= 20)].index
    assert len(set(rare_benign) - set(attack_types)) >= 2


def test_attack_alerts_have_unusual_attributes(sim, attacks):
    noise = sim.alerts[sim.alerts["label_attack"] == 0]
    seen, held_out = noise.iloc[::2], noise.iloc[1::2]

    def unusual(alerts: pd.DataFrame) -> float:
        """Share of alerts with a (type, user, process) or (type, port, signature, severity) unseen in noise."""
        out = np.zeros(len(alerts), bool)
        for cols in (["type", "user", "process"], ["type", "dst_port", "signature", "severity"]):
            key = alerts[cols].astype(str).agg("|".join, axis=1)
            out |= ~key.isin(set(seen[cols].astype(str).agg("|".join, axis=1))).to_numpy()
        return out.mean()

    assert unusual(attacks) > 0.4 and unusual(attacks) > 5 * unusual(held_out)
    variants = attacks.groupby(["template", "step"])[["process", "signature", "dst_port"]].nunique()
    assert (variants.max(axis=1) > 1).mean() > 0.5


def test_same_seed_same_alerts_other_seed_other_alerts():
    first = simulate_enterprise(n_alerts=5000, seed=3).alerts
    again = simulate_enterprise(n_alerts=5000, seed=3).alerts
    other = simulate_enterprise(n_alerts=5000, seed=4).alerts
    pd.testing.assert_frame_equal(first, again)
    digest = [hashlib.sha256(f.to_csv(index=False).encode()).hexdigest() for f in (first, again, other)]
    assert digest[0] == digest[1] != digest[2]


@pytest.mark.parametrize("n_alerts", [2000, 50000])
def test_n_alerts_is_honoured(n_alerts):
    assert abs(len(simulate_enterprise(n_alerts=n_alerts).alerts) - n_alerts) <= 0.02 * n_alerts


@pytest.mark.parametrize("fraction", [0.01, 0.05])
def test_attack_fraction_is_honoured(fraction):
    observed = simulate_enterprise(attack_fraction=fraction).alerts["label_attack"].mean()
    assert fraction * 0.7 < observed < fraction * 1.3


def test_default_attack_fraction(sim):
    assert 0.02 < sim.alerts["label_attack"].mean() < 0.04


def test_daily_cycle(sim):
    noise = pd.to_datetime(sim.alerts.loc[sim.alerts["label_attack"] == 0, "time"], unit="s")
    per_hour = noise.dt.floor("h").value_counts()  # medians: robust to floods and bursts
    hours = per_hour.index
    working = per_hour[(hours.day_of_week < 5) & (hours.hour >= 9) & (hours.hour < 17)].median()
    night = per_hour[hours.hour < 6].median()
    assert working > 2 * night


def test_a_benign_flood_exists(sim):
    noise = sim.alerts[sim.alerts["label_attack"] == 0]

    def most_in_six_hours(times: pd.Series) -> int:
        t = times.to_numpy()
        return int((np.searchsorted(t, t + 6 * 3600) - np.arange(len(t))).max())

    assert noise.groupby(["host", "signature"], observed=True)["time"].apply(most_in_six_hours).max() >= 1000


def test_periodic_jobs_run_daily(sim):
    backups = sim.alerts[(sim.alerts["type"] == "sys.backup_warning") & (sim.alerts["user"] == "svc-backup")]
    gaps = backups.groupby("host", observed=True)["time"].apply(lambda t: np.median(np.diff(t.to_numpy())))
    assert len(gaps) >= 3 and np.all(np.abs(gaps - 86400) < 3600)


def test_attributes_are_heterogeneous(sim):
    a = sim.alerts
    distinct = {c: a[c].nunique() for c in ("host", "user", "process", "src_ip", "dst_ip", "dst_port", "signature", "type")}
    assert distinct["host"] == DEFAULTS["n_hosts"] and distinct["type"] >= 40
    assert distinct["user"] >= 50 and distinct["process"] >= 20 and distinct["signature"] >= 40
    assert distinct["dst_port"] >= 10 and distinct["src_ip"] >= 500
    assert set(a["severity"]) == {"low", "medium", "high", "critical"}
    assert set(a["detector"]) == {"edr", "nids", "siem", "firewall", "mail-gw"}
    assert (a.loc[a["detector"] == "nids", "process"] == "").all()
    assert set(sim.hosts["role"]) == set(ROLES)


def test_rarity_baseline_is_far_from_perfect(sim):
    a = sim.alerts
    freq = a["type"].map(a["type"].value_counts()).to_numpy(np.float64)
    ap = average_precision(-np.log(freq / len(a)), a["label_attack"].to_numpy())
    assert a["label_attack"].mean() < ap < 0.8


def test_alert_table():
    table = load_enterprise_sim(None, n_alerts=3000, seed=1)
    frame = simulate_enterprise(n_alerts=3000, seed=1).alerts
    assert len(table) == len(frame) and len(table.rejected) == 0
    assert table.alerts["alert_id"].tolist() == list(range(len(frame)))
    assert table.alerts["source"].iloc[0] == "enterprise_sim:1"
    assert table.alerts["time"].is_monotonic_increasing
    assert table.attributes == ATTRIBUTES
    assert (table.alerts["entity"] == frame["host"].astype(str)).all()
    assert list(table.labels.columns) == LABEL_COLUMNS and table.label_kinds == ["attack"]
    assert (table.label("attack") == frame["label_attack"].to_numpy()).all()
    assert (table.alerts.loc[frame["detector"] == "nids", "process"] == "(missing)").all()


def test_csv_reads_back(tmp_path):
    out = tmp_path / "sim.csv"
    rows = write_simulation(out, n_alerts=2000, seed=2)
    raw = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert rows == len(raw) and list(raw.columns) == CSV_COLUMNS
    assert raw["time"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    back = build_alert_table(raw, source=str(out), time="time", entity="host", type="type", attributes=ATTRIBUTES)
    table = load_enterprise_sim(n_alerts=2000, seed=2)
    columns = ["alert_id", "time", "entity", "type", *ATTRIBUTES]
    pd.testing.assert_frame_equal(back.alerts[columns], table.alerts[columns])
    assert (raw["label_attack"].astype(int) == table.label("attack")).all()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_alert": 5}, r"unknown option 'n_alert'; valid options: n_alerts, seed"),
        ({"pattern_length": 2}, r"pattern_length=2 is out of range"),
        ({"seed": -1}, r"seed=-1 is out of range \(seed >= 0"),  # numpy's own error was a traceback in `car simulate`
        ({"days": 3651}, r"days=3651 is out of range \(.* 1 <= days <= 3650,"),  # the range said '1 <= days'
        ({"start": "not a date"}, r"invalid option value"),
        # Times a loader rejects (1990..2100): every alert was rejected, or those past 2100 ('no usable
        # alerts ...; check data.columns.time and data.time_unit', or 1371 of 2000 rejected)
        ({"start": "1850-01-01"}, r"start=1850-01-01 00:00:00\+00:00 is out of range \(.*1990-01-01 <= start"),
        ({"start": "2099-12-25", "days": 30}, r"start \+ days <= 2100-01-01"),
    ],
)
def test_bad_options_raise(options, message):
    with pytest.raises(DataError, match=message):
        simulate_enterprise(**options)
    with pytest.raises(DataError, match=message):
        load_enterprise_sim(None, **options)


def test_config_lists_every_option_with_its_default():
    cfg = OmegaConf.to_container(OmegaConf.load(CONFIG))
    assert cfg.pop("format") == "enterprise_sim" and cfg.pop("path") is None and cfg.pop("history") is None
    assert cfg.pop("seed") == "${seed}"
    assert cfg == {k: v for k, v in DEFAULTS.items() if k != "seed"}


@pytest.mark.parametrize(("days", "gap_minutes"), [(1, 480.0), (2, 2000.0)])
def test_campaigns_too_long_for_the_period_end_within_it(days, gap_minutes):
    # Ten steps with a median gap of 8 h do not fit in one day: the runs that would not were
    # started at the period's start and ran on past its end (93 h past it at days=1).
    a = simulate_enterprise(n_alerts=2000, days=days, gap_minutes=gap_minutes, pattern_length=10, seed=0).alerts
    start = pd.Timestamp(DEFAULTS["start"], tz="UTC").timestamp()
    assert a["time"].min() >= start and a["time"].max() < start + days * 86400
    for campaign, run in a[a["label_attack"] == 1].groupby("campaign", observed=True):
        assert run["step"].is_monotonic_increasing, campaign
        assert set(run["step"]) == set(range(run["step"].max() + 1)), campaign


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start": ""}, r"start='' is not a date"),  # was a ValueError traceback (NaT.timestamp)
        ({"n_alerts": float("inf")}, r"invalid option value"),  # was an OverflowError traceback
        ({"gap_minutes": float("inf")}, r"gap_minutes=inf is not finite"),  # was accepted: times overflowed
        ({"days": 1.5}, r"days=1.5 is not a whole number"),  # was one day, silently
        ({"days": 0.5}, r"days=0.5 is not a whole number"),  # was 'days=0 is out of range'
        ({"pattern_length": 3.5}, r"pattern_length=3.5 is not a whole number"),
        ({"seed": True}, r"seed=True is not a number"),
    ],
)
def test_bad_option_values_are_one_line_errors(options, message):
    with pytest.raises(DataError, match=message):
        simulate_enterprise(**options)


def test_whole_numbers_given_as_floats_or_text_are_accepted():
    expected = simulate_enterprise(n_alerts=1000, seed=2).alerts
    pd.testing.assert_frame_equal(simulate_enterprise(n_alerts=1000.0, seed="2").alerts, expected)


def test_one_run_per_template_that_swamps_the_alerts_is_an_error():
    # 50 templates of up to 10 steps, each run once, made 544 alerts for n_alerts=200, 94 % attacks.
    with pytest.raises(DataError, match=r"each of the 50 planted templates runs at least once: \d+ attack alerts"):
        simulate_enterprise(n_alerts=200, n_hosts=12, n_campaigns=50, pattern_length=10)


def test_one_run_per_template_above_the_attack_fraction_is_logged(caplog):
    with caplog.at_level("WARNING", logger="car.data.simulate"):
        a = simulate_enterprise(n_alerts=200, seed=0).alerts
    assert len(a) == 200 and a["label_attack"].mean() > 0.1  # 5 templates run once: above 0.03
    assert "instead of attack_fraction=0.03" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="car.data.simulate"):
        simulate_enterprise(n_alerts=5000, seed=0)
    assert caplog.text == ""
