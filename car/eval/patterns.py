"""Pattern evaluation: precision of each pattern against alert labels, and how well the top
patterns reconstruct the known attack (../shared/docs/benchmark.md).

* AIT-ADS: the attack steps (``event_label``) found among the alerts of the top patterns, over
  all steps of the scenario, and Kendall's tau between the order in which the phases of the
  known attack chain first appear in the top patterns and their order in the chain.
* CPTC-2017: the same for SAGE micro attack stages (signature -> stage map) and kill-chain phases.
* Simulator: precision and recall of the planted campaigns among the top patterns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from car.alerts import AlertTable
from car.errors import ConfigError, DataError
from car.models.base import STEP_SEPARATOR, Ranking
from car.temporal.patterns import is_subsequence

TOP_PATTERNS = 5

# The AIT-ADS attack chain (../shared/data/README.md) and the event_label values of each phase.
# No event_label marks the reverse shell or the service stop; dnsteal is a separate episode:
# it counts for coverage but has no place in the order.
AIT_CHAIN: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("network scans", ("dns_scan",)),
    ("service scans", ("service_scan",)),
    ("wpscan/dirb", ("wpscan", "dirb")),
    ("webshell", ("webshell_cmd",)),
    ("cracking", ("online_cracking", "crack_passwords")),
    ("reverse shell", ()),
    ("privilege escalation", ("attacker_change_user", "escalated_sudo_command")),
    ("service stop", ()),
)
AIT_NO_STEP = "-"

# SAGE micro attack stages (tudelft-cda-lab/SAGE, MicroAttackStage) by kill-chain phase:
# reconnaissance, then intrusion and escalation, then actions on objectives.
SAGE_PHASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("reconnaissance", ("TARGET_IDEN", "SURFING", "SOCIAL_ENGINEERING", "HOST_DISC", "SERVICE_DISC",
                        "VULN_DISC", "INFO_DISC")),
    ("intrusion and escalation", ("USER_PRIV_ESC", "ROOT_PRIV_ESC", "NETWORK_SNIFFING", "BRUTE_FORCE_CREDS",
                                  "ACCT_MANIP", "TRUSTED_ORG_EXP", "PUBLIC_APP_EXP", "REMOTE_SERVICE_EXP",
                                  "SPEARPHISHING", "SERVICE_SPECIFIC", "DEFENSE_EVASION", "COMMAND_AND_CONTROL",
                                  "LATERAL_MOVEMENT", "ARBITRARY_CODE_EXE", "PRIV_ESC")),
    ("actions on objectives", ("END_POINT_DOS", "NETWORK_DOS", "SERVICE_STOP", "RESOURCE_HIJACKING",
                               "DATA_DESTRUCTION", "CONTENT_WIPE", "DATA_ENCRYPTION", "DEFACEMENT",
                               "DATA_MANIPULATION", "DATA_EXFILTRATION", "DATA_DELIVERY", "PHISHING")),
)
SAGE_NOT_A_STAGE = "NON_MALICIOUS"
STAGE_MAP_COLUMNS = ("signature", "micro_attack_stage")


def chain_positions(chain: Sequence[tuple[str, Sequence[str]]]) -> dict[str, int]:
    """Step name -> 0-based index of its phase in ``chain`` ((phase, steps) pairs)."""
    return {step: index for index, (_, steps) in enumerate(chain) for step in steps}


def label_patterns(patterns: pd.DataFrame, pattern_alerts: np.ndarray | None, table: AlertTable) -> pd.DataFrame:
    """Add ``precision_<kind>`` per pattern: the share of its occurrence alerts labelled positive.

    pattern_alerts: (nnz, 2) pairs (alert row, pattern_id) of the occurrence matrix.
    """
    out = patterns.copy()
    if pattern_alerts is None or not len(patterns):
        for kind in table.label_kinds:
            out[f"precision_{kind}"] = pd.Series(dtype=np.float64)
        return out
    rows, ids = pattern_alerts[:, 0], pattern_alerts[:, 1]
    size = np.bincount(ids, minlength=int(out["pattern_id"].max()) + 1).astype(np.float64)
    for kind in table.label_kinds:
        hits = np.bincount(ids, weights=table.label(kind)[rows], minlength=len(size))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"precision_{kind}"] = (hits / size)[out["pattern_id"].to_numpy(np.int64)]
    return out


def evaluate_patterns(
    table: AlertTable, ranking: Ranking, stage_map: str | PathLike | None = None, top: int = TOP_PATTERNS
) -> dict[str, float]:
    """Reconstruction metrics of the patterns ranked 1..``top``, keyed ``patterns/<name>_at_<top>``.

    AIT-ADS steps when the labels have ``event_label``; simulator campaigns when they have
    ``template`` and ``step``; SAGE stages of the alert types (signatures) when ``stage_map``
    names the map's CSV. Empty for a model that yields no patterns (``pattern_alerts`` None).
    """
    if ranking.pattern_alerts is None:
        return {}
    labels = table.labels if table.labels is not None else pd.DataFrame(index=table.alerts.index)
    rows = top_pattern_rows(ranking.pattern_alerts, top)
    found: dict[str, float] = {}
    if "event_label" in labels:
        steps = labels["event_label"].astype("string")
        steps = steps.mask(steps.isin([AIT_NO_STEP]))
        coverage, order = reconstruction(steps, table.seconds(), rows, chain_positions(AIT_CHAIN))
        found |= {"step_coverage": coverage, "step_order_tau": order}
    if {"template", "step"} <= set(labels.columns):
        ranked = ranking.patterns.sort_values("pattern_id")["steps"]
        found |= campaign_metrics([tuple(s.split(STEP_SEPARATOR)) for s in ranked], planted_campaigns(table), top)
    if stage_map is not None:
        stages = table.alerts["type"].map(read_stage_map(stage_map)).astype("string")
        stages = stages.mask(stages.isin([SAGE_NOT_A_STAGE]))  # unmapped signatures stay <NA>
        coverage, order = reconstruction(stages, table.seconds(), rows, chain_positions(SAGE_PHASES))
        found |= {"stage_coverage": coverage, "stage_order_tau": order}
    return {f"patterns/{name}_at_{top}": value for name, value in found.items()}


def top_pattern_rows(pattern_alerts: np.ndarray, top: int) -> np.ndarray:
    """Distinct alert rows in the occurrences of patterns 1..``top`` (pattern_id = rank), sorted."""
    return np.unique(pattern_alerts[pattern_alerts[:, 1] <= top, 0])


def reconstruction(steps: pd.Series, times: np.ndarray, rows: np.ndarray, chain: Mapping[str, int]) -> tuple[float, float]:
    """Coverage and order agreement of the attack steps among the alerts ``rows``.

    steps: each alert's attack step, <NA> for none, shape (n,); times: seconds, shape (n,);
    chain: step -> index of its phase in the known order. Coverage: distinct steps among
    ``rows`` over distinct steps among all alerts (NaN without steps). Order: Kendall's tau-b
    between the phases found among ``rows`` (steps not in ``chain`` left out) and the time of
    each phase's first alert among ``rows``: 1 when the phases first appear in chain order
    (NaN with fewer than two phases).
    """
    every = steps.dropna().unique()
    found = pd.DataFrame({"step": steps.to_numpy()[rows], "time": times[rows]}).dropna(subset="step")
    coverage = found["step"].nunique() / len(every) if len(every) else math.nan
    first = found.assign(phase=found["step"].map(chain)).dropna(subset="phase").groupby("phase")["time"].min()
    return coverage, kendall_tau(first.index.to_numpy(np.float64), first.to_numpy(np.float64))


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b of two sequences of shape (n,), ties allowed; NaN if either has no untied pair."""
    first, second = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[first] - x[second]), np.sign(y[first] - y[second])
    untied = math.sqrt(np.count_nonzero(dx) * np.count_nonzero(dy))
    return float(np.sum(dx * dy) / untied) if untied else math.nan


def planted_campaigns(table: AlertTable) -> list[tuple[str, ...]]:
    """The simulator's campaign templates as ordered alert types, from the ``template`` and
    ``step`` annotations (template -1 = benign); equal to ``car.data.simulate.planted_patterns``."""
    frame = pd.DataFrame({"template": table.labels["template"].to_numpy(), "step": table.labels["step"].to_numpy(),
                          "type": table.alerts["type"].to_numpy()})
    steps = frame[frame["template"] >= 0].groupby(["template", "step"])["type"].first()
    return [tuple(group) for _, group in steps.groupby(level="template")]


def campaign_metrics(patterns: Sequence[tuple[str, ...]], campaigns: Sequence[tuple[str, ...]], top: int) -> dict[str, float]:
    """Precision and recall of planted campaigns among the first ``top`` patterns (rank order).

    A pattern of two or more steps matches a campaign when its steps occur in the campaign in
    the same order (gaps allowed: steps seen on other hosts are missing from a host's pattern).
    Precision: matching patterns over the patterns considered (NaN without patterns); recall:
    campaigns matched by at least one of them over all campaigns (NaN without campaigns).
    """
    considered = list(patterns)[:top]
    matches = np.array([[len(p) > 1 and is_subsequence(p, c) for c in campaigns] for p in considered], dtype=bool)
    matches = matches.reshape(len(considered), len(campaigns))
    precision = matches.any(axis=1).mean() if len(considered) else math.nan
    recall = matches.any(axis=0).mean() if len(campaigns) else math.nan
    return {"campaign_precision": float(precision), "campaign_recall": float(recall)}


def read_stage_map(path: str | PathLike) -> dict[str, str]:
    """SAGE's signature -> micro attack stage map (CSV with ``STAGE_MAP_COLUMNS``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"stage_map={path}: no such file; give SAGE's map with stage_map=<path to sage_signature_stage_map.csv>")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in STAGE_MAP_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} is missing; a stage map needs the columns {', '.join(STAGE_MAP_COLUMNS)}")
    known = set(chain_positions(SAGE_PHASES)) | {SAGE_NOT_A_STAGE}
    unknown = ~frame["micro_attack_stage"].isin(known)
    if unknown.any():
        line = int(np.argmax(unknown.to_numpy())) + 2  # line 1 is the header
        raise DataError(f"{path}:{line}: micro_attack_stage {frame['micro_attack_stage'][line - 2]!r} is not a SAGE "
                        f"stage; use one of {', '.join(sorted(known))}")
    return dict(zip(frame["signature"], frame["micro_attack_stage"]))
