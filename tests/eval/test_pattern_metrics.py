"""Pattern reconstruction metrics: hand-checked small cases, then real data (simulator campaigns,
AIT-ADS attack steps, CPTC-2017 SAGE stages) with oracle pattern sets whose answers are known."""

import math

import numpy as np
import pandas as pd
import pytest

from car.data import load_alerts
from car.data.cptc import load_cptc
from car.data.simulate import load_enterprise_sim, planted_patterns
from car.errors import ConfigError, DataError
from car.eval.patterns import (
    AIT_CHAIN, SAGE_NOT_A_STAGE, campaign_metrics, chain_positions, evaluate_patterns, kendall_tau,
    planted_campaigns, read_stage_map, reconstruction,
)
from car.models.base import Ranking
from conftest import shared_file


def oracle(n_alerts: int, pattern_rows: list[np.ndarray], steps: list[tuple[str, ...]] | None = None) -> Ranking:
    """A ranking whose pattern k (1-based) occurs exactly on the alert rows ``pattern_rows[k-1]``."""
    steps = steps or [("a", "b")] * len(pattern_rows)
    pairs = np.concatenate([np.column_stack([rows, np.full(len(rows), k + 1)]) for k, rows in enumerate(pattern_rows)])
    patterns = pd.DataFrame({"pattern_id": np.arange(1, len(steps) + 1), "steps": [" > ".join(s) for s in steps]})
    return Ranking(scores=np.zeros(n_alerts), patterns=patterns, pattern_alerts=pairs.astype(np.int64))


def test_kendall_tau_by_hand():
    assert kendall_tau(np.array([0.0, 1, 2]), np.array([5.0, 6, 9])) == 1.0
    assert kendall_tau(np.array([0.0, 1, 2]), np.array([9.0, 6, 5])) == -1.0
    # ties in x: pair (0,1) is tied; pairs (0,2), (1,2) concordant -> 2 / sqrt(2 * 3)
    assert kendall_tau(np.array([0.0, 0, 1]), np.array([1.0, 2, 3])) == pytest.approx(2 / math.sqrt(6))
    # one discordant of three untied pairs: (1 - 1 + 1) / 3
    assert kendall_tau(np.array([0.0, 1, 2]), np.array([1.0, 3, 2])) == pytest.approx(1 / 3)
    assert math.isnan(kendall_tau(np.array([1.0, 1]), np.array([1.0, 2])))
    assert math.isnan(kendall_tau(np.array([1.0]), np.array([1.0])))


def test_reconstruction_by_hand():
    steps = pd.Series(["scan", None, "exploit", "exfil", "scan", "other"], dtype="string")
    times = np.array([10.0, 20, 30, 40, 50, 60])
    chain = {"scan": 0, "exploit": 1, "exfil": 2}
    # rows 2, 3, 4: exploit at 30, exfil at 40, scan at 50 -> 3 of 4 steps; positions (1, 2, 0) vs
    # times (30, 40, 50): pairs (exploit, exfil) concordant, the two with scan discordant -> -1/3
    coverage, order = reconstruction(steps, times, np.array([2, 3, 4]), chain)
    assert coverage == 0.75 and order == pytest.approx(-1 / 3)
    coverage, order = reconstruction(steps, times, np.array([0, 1, 2, 3, 5]), chain)
    assert coverage == 1.0 and order == 1.0  # "other" counts for coverage, not for order
    coverage, order = reconstruction(steps, times, np.array([1]), chain)
    assert coverage == 0.0 and math.isnan(order)
    # a phase of two steps counts once, at its first alert: exfil (40) before exploit/scan (10)
    coverage, order = reconstruction(steps, times, np.array([0, 2, 3]), {"scan": 1, "exploit": 1, "exfil": 0})
    assert coverage == 0.75 and order == -1.0


def test_campaign_metrics_by_hand():
    campaigns = [("A", "B", "C"), ("X", "Z")]
    patterns = [("A", "C"), ("C", "A"), ("X", "Y"), ("A",)]
    # only A > C matches (in order, gap allowed); a single step never counts
    assert campaign_metrics(patterns, campaigns, 4) == {"campaign_precision": 0.25, "campaign_recall": 0.5}
    assert campaign_metrics(patterns, campaigns, 1) == {"campaign_precision": 1.0, "campaign_recall": 0.5}
    empty = campaign_metrics([], campaigns, 5)
    assert math.isnan(empty["campaign_precision"]) and empty["campaign_recall"] == 0.0


def test_model_without_patterns_has_no_pattern_metrics():
    table = load_enterprise_sim(n_alerts=500, seed=1)
    assert evaluate_patterns(table, Ranking(scores=np.zeros(len(table)))) == {}


def test_planted_campaigns_are_recovered_by_an_oracle_and_not_by_their_reversal():
    table = load_enterprise_sim(n_alerts=4000, seed=3)
    planted = planted_patterns(seed=3, n_alerts=4000)
    assert planted_campaigns(table) == planted and len(planted) == 5
    template = table.labels["template"].to_numpy()
    rows = [np.flatnonzero(template == t) for t in range(len(planted))]
    found = evaluate_patterns(table, oracle(len(table), rows, planted))
    assert found == {"patterns/campaign_precision_at_5": 1.0, "patterns/campaign_recall_at_5": 1.0}
    assert evaluate_patterns(table, oracle(len(table), rows, planted), top=2)["patterns/campaign_recall_at_2"] == 0.4
    # Reversed, only the palindrome edr.unsigned_binary > edr.process_injection > edr.unsigned_binary matches.
    reversed_steps = [tuple(reversed(p)) for p in planted]
    assert [p == r for p, r in zip(planted, reversed_steps)] == [False] * 4 + [True]
    found = evaluate_patterns(table, oracle(len(table), rows, reversed_steps))
    assert found == {"patterns/campaign_precision_at_5": 0.2, "patterns/campaign_recall_at_5": 0.2}


def test_ait_ads_attack_steps_of_oracle_patterns():
    path = shared_file("ait-ads", "russellmitchell_alerts.csv.gz")
    table = load_alerts({"format": "ait_ads"}, path)
    steps = table.labels["event_label"]
    attack = np.flatnonzero(steps != "-")
    # All 8 labelled steps, and in time their phases follow the chain (service scans, wpscan/dirb,
    # webshell, cracking, privilege escalation; dnsteal has no place in the order).
    found = evaluate_patterns(table, oracle(len(table), [attack]))
    assert found == {"patterns/step_coverage_at_5": 1.0, "patterns/step_order_tau_at_5": 1.0}
    assert set(steps.unique()) - {"-", "dnsteal"} <= set(chain_positions(AIT_CHAIN))
    two = np.flatnonzero(steps.isin(["wpscan", "service_scan"]))
    found = evaluate_patterns(table, oracle(len(table), [np.flatnonzero(steps == "-")[:50], two]))
    assert found == {"patterns/step_coverage_at_5": 2 / 8, "patterns/step_order_tau_at_5": 1.0}
    # the steps only of pattern 6 are not among the top 5
    benign = np.flatnonzero(steps == "-")[:6]
    found = evaluate_patterns(table, oracle(len(table), [*[benign[i:i + 1] for i in range(5)], attack]))
    assert found["patterns/step_coverage_at_5"] == 0.0 and math.isnan(found["patterns/step_order_tau_at_5"])


def test_cptc_stages_of_a_real_team(tmp_path):
    stage_map = shared_file("cptc-2017", "sage_signature_stage_map.csv")
    table = load_cptc(str(shared_file("cptc-2017", "NationalTeam5.json.gz")))
    mapping = read_stage_map(stage_map)
    assert len(mapping) == 773 and mapping["ET ATTACK_RESPONSE Frequent HTTP 401 Unauthorized - Possible Brute Force Attack"] == "BRUTE_FORCE_CREDS"
    stages = table.alerts["type"].map(mapping)
    assert stages.notna().all()  # every signature of the team is in SAGE's map
    real = set(stages) - {SAGE_NOT_A_STAGE}
    everything = evaluate_patterns(table, oracle(len(table), [np.arange(len(table))]), stage_map)
    assert everything["patterns/stage_coverage_at_5"] == 1.0
    assert -1.0 <= everything["patterns/stage_order_tau_at_5"] <= 1.0
    discovery = np.flatnonzero(stages == "HOST_DISC")
    one = evaluate_patterns(table, oracle(len(table), [discovery]), stage_map)
    assert one["patterns/stage_coverage_at_5"] == 1 / len(real) and math.isnan(one["patterns/stage_order_tau_at_5"])
    # signatures missing from a map have no stage: here only discovery is known
    partial = tmp_path / "partial.csv"
    signatures = sorted(set(table.alerts["type"][discovery]))
    partial.write_text("signature,micro_attack_stage\n" + "".join(f'"{s}",HOST_DISC\n' for s in signatures))
    one = evaluate_patterns(table, oracle(len(table), [discovery]), partial)
    assert one["patterns/stage_coverage_at_5"] == 1.0


def test_bad_stage_map_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        read_stage_map(tmp_path / "absent.csv")
    bad = tmp_path / "map.csv"
    bad.write_text("signature,stage\nET SCAN x,HOST_DISC\n")
    with pytest.raises(DataError, match="map.csv: column 'micro_attack_stage' is missing"):
        read_stage_map(bad)
    bad.write_text("signature,micro_attack_stage\nET SCAN x,HOST_DISC\nET y,RECON_ISH\n")
    with pytest.raises(DataError, match=r"map.csv:3: micro_attack_stage 'RECON_ISH' is not a SAGE stage") as err:
        read_stage_map(bad)
    assert "\n" not in str(err.value)
