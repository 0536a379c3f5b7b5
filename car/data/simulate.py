"""Built-in enterprise alert simulator with planted multi-step attack campaigns.

The simulated enterprise has hosts with roles (``ws`` workstation, ``srv`` server, ``mail``,
``fw`` firewall, ``dc`` domain controller, ``web``, ``db``), one user per workstation,
administrators and service accounts. Five detectors (edr, nids, siem, firewall, mail-gw)
raise alerts of about fifty types. Benign alerts (label 0) come from

* background false positives, more during working hours on weekdays for most types;
* periodic jobs (backups, patches, cron, AV updates) at fixed intervals on some hosts;
* bursts (tens of alerts of one type on one host within minutes) and floods (one
  signature firing thousands of times on one host within hours).

Attack campaigns (label 1) are instances of ``n_campaigns`` templates. A template is an
ordered chain of 3..``pattern_length`` techniques following the kill chain (recon,
exploit, then lateral movement / privilege escalation / discovery, then exfiltration);
each template runs many times on different hosts, with random gaps between steps (at least
2 minutes; a run that would not end within the period has its gaps shortened to fit). Lateral
steps move to another host; some steps are seen by another host (the mail gateway, the
domain controller, the firewall). Attack alerts reuse alert types that also occur as benign
noise (some commonly, some rarely), vary in process, signature and port, and have unusual
attribute combinations (admin tools under normal users, attacker addresses); with
probability ``noise`` each attribute of an attack alert (``detector`` excepted: it follows the
type) is redrawn as a benign alert of its type and host would have it, often the same value.

Generation is vectorised over integer codes; strings appear only in the final frame.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from car.alerts import TIME_MAX, TIME_MIN, AlertTable, DataError, build_alert_table

log = logging.getLogger(__name__)

DEFAULTS: dict[str, object] = {
    "n_alerts": 20000,
    "seed": 0,
    "n_hosts": 120,
    "n_campaigns": 5,
    "attack_fraction": 0.03,
    "days": 14,
    "start": "2024-03-04",
    "noise": 0.1,
    "pattern_length": 6,
    "gap_minutes": 30.0,
}
ATTRIBUTES = ["user", "process", "src_ip", "dst_ip", "dst_port", "signature", "severity", "detector"]
LABEL_COLUMNS = ["label_attack", "campaign", "step", "stage", "template"]
CSV_COLUMNS = ["time", "host", "type", *ATTRIBUTES, *LABEL_COLUMNS]
ROLES = ("ws", "srv", "mail", "fw", "dc", "web", "db")
STAGES = ("", "recon", "exploit", "lateral", "privesc", "exfil")
SEVERITIES = ("low", "medium", "high", "critical")
SERVICE_ACCOUNTS = {
    "srv": "svc-app", "mail": "svc-mail", "fw": "svc-fw", "dc": "svc-ad", "web": "svc-web", "db": "svc-sql",
}
# Share of the benign alerts per generator; the background takes the rest.
PERIODIC_SHARE, FLOOD_SHARE, BURST_SHARE = 0.10, 0.15, 0.08
# Where internal connections go: servers are contacted more than workstations.
ROLE_PULL = {"ws": 1.0, "srv": 4.0, "mail": 4.0, "fw": 2.0, "dc": 6.0, "web": 3.0, "db": 4.0}
LATERAL_TARGETS, LATERAL_P = ("srv", "db", "dc", "ws"), (0.35, 0.25, 0.15, 0.25)


@dataclass(frozen=True)
class _Type:
    """An alert type and how it looks as benign noise (space-separated lists, '' = none)."""

    name: str
    detector: str
    weight: float  # relative background rate
    roles: str  # host roles it fires on
    user: str  # owner | any | admin | system | none
    peer: str  # none | internal | external | inbound | transit | login
    procs: str
    ports: str
    sigs: tuple[str, ...]
    sev: int  # index into SEVERITIES
    office: bool  # follows working hours


_CATALOG = (
    _Type("fw.deny_inbound", "firewall", 30, "fw", "none", "inbound", "", "23 445 3389 22 1433 5900", ("FW deny inbound TCP", "FW deny inbound UDP"), 0, False),
    _Type("fw.deny_outbound", "firewall", 8, "fw", "none", "transit", "", "6881 25 8080 53", ("FW deny outbound TCP", "FW deny outbound to blocklist"), 0, True),
    _Type("sys.config_change", "siem", 1.2, "fw srv", "admin", "none", "sshd mmc.exe", "", ("Configuration changed", "Firewall rule modified"), 0, True),
    _Type("auth.failed_login", "siem", 25, "dc srv ws", "any", "login", "lsass.exe sshd winlogon.exe", "445 3389 22 88", ("4625 logon failure", "Kerberos pre-auth failed"), 0, True),
    _Type("auth.account_lockout", "siem", 3, "dc", "any", "login", "lsass.exe", "88 445", ("4740 account locked out",), 1, True),
    _Type("auth.admin_login_new_host", "siem", 4, "srv db dc ws", "admin", "login", "lsass.exe", "3389 445 5985", ("Admin logon to new host", "Explicit credential logon"), 1, True),
    _Type("auth.privileged_group_change", "siem", 0.3, "dc", "admin", "login", "lsass.exe", "389", ("Privileged group membership change",), 2, True),
    _Type("auth.kerberoast_tgs", "siem", 0.2, "dc", "any", "login", "lsass.exe", "88", ("Many TGS requests RC4",), 1, False),
    _Type("auth.brute_force", "siem", 0.8, "web mail srv", "any", "inbound", "sshd lsass.exe", "22 3389 25", ("Multiple failed logins from one source",), 1, False),
    _Type("auth.vpn_unusual_geo", "siem", 2, "fw", "any", "inbound", "vpnd", "443", ("VPN logon from new country",), 1, True),
    _Type("edr.unsigned_binary", "edr", 10, "ws srv", "owner", "none", "setup.exe update.exe toolbox.exe installer.exe", "", ("Unsigned binary executed from Downloads", "Unsigned binary executed from Temp"), 0, True),
    _Type("edr.pup_detected", "edr", 6, "ws", "owner", "external", "toolbar.exe coupon_helper.exe", "443 80", ("Potentially unwanted program",), 0, True),
    _Type("edr.suspicious_powershell", "edr", 2, "ws srv", "admin", "none", "powershell.exe pwsh.exe", "", ("Encoded PowerShell command", "PowerShell execution policy bypass"), 1, True),
    _Type("edr.office_macro_child", "edr", 0.4, "ws", "owner", "none", "excel.exe winword.exe", "", ("Office spawned cmd.exe",), 1, True),
    _Type("edr.scheduled_task_created", "edr", 4, "ws srv", "system", "none", "svchost.exe schtasks.exe", "", ("Scheduled task created",), 0, False),
    _Type("edr.registry_run_key", "edr", 3, "ws", "owner", "none", "onedrive.exe setup.exe reg.exe", "", ("Run key added",), 0, True),
    _Type("edr.service_installed", "edr", 2.5, "ws srv db dc", "system", "none", "msiexec.exe services.exe", "", ("New service installed",), 1, True),
    _Type("edr.wmi_remote_exec", "edr", 0.3, "srv ws", "admin", "internal", "wmiprvse.exe", "135", ("WMI remote process create",), 1, True),
    _Type("edr.lsass_access", "edr", 0.2, "ws srv dc", "system", "none", "MsMpEng.exe csrss.exe", "", ("LSASS memory read",), 2, False),
    _Type("edr.process_injection", "edr", 0.6, "ws srv", "owner", "none", "chrome.exe teams.exe", "", ("Remote thread in another process",), 1, True),
    _Type("edr.uac_bypass", "edr", 0.05, "ws", "owner", "none", "fodhelper.exe", "", ("UAC bypass via registry",), 2, True),
    _Type("edr.discovery_commands", "edr", 3, "ws srv dc", "admin", "none", "ipconfig.exe net.exe whoami.exe", "", ("Account discovery commands", "Domain discovery commands"), 0, True),
    _Type("edr.archive_created", "edr", 1.5, "srv db ws", "owner", "none", "7z.exe winrar.exe backup-agent.exe", "", ("Archive of many documents",), 0, True),
    _Type("edr.defender_disabled", "edr", 0.1, "ws srv", "admin", "none", "powershell.exe", "", ("Defender real-time protection disabled",), 2, True),
    _Type("nids.port_scan", "nids", 4, "srv ws", "none", "internal", "", "22 80 443 445 3389", ("ET SCAN Nmap SYN scan", "ET SCAN internal host sweep"), 1, False),
    _Type("nids.smb_enum", "nids", 0.5, "srv dc", "none", "internal", "", "445", ("SMB share enumeration",), 1, True),
    _Type("nids.ldap_enum", "nids", 0.3, "dc", "none", "login", "", "389 636", ("LDAP bulk query",), 1, True),
    _Type("nids.icmp_sweep", "nids", 1, "srv fw", "none", "internal", "", "", ("ICMP sweep",), 0, False),
    _Type("nids.web_exploit_attempt", "nids", 12, "web", "none", "inbound", "", "80 443 8080", ("ET WEB SQL injection UNION SELECT", "ET WEB Path traversal attempt", "ET EXPLOIT Log4j JNDI lookup", "ET WEB Apache Struts OGNL RCE"), 1, False),
    _Type("nids.smb_remote_exec", "nids", 0.3, "srv ws", "none", "internal", "", "445", ("SMB remote service exec",), 1, True),
    _Type("nids.rdp_internal", "nids", 3, "srv ws db", "none", "login", "", "3389", ("Internal RDP session",), 0, True),
    _Type("nids.large_outbound", "nids", 1.5, "srv db ws", "none", "external", "", "443 22", ("Large outbound transfer",), 0, True),
    _Type("nids.dns_tunnel", "nids", 0.15, "ws srv", "none", "external", "", "53", ("Long DNS query names",), 1, False),
    _Type("nids.c2_beacon", "nids", 0.3, "ws", "none", "external", "", "443 8080", ("Periodic beacon to rare host",), 1, False),
    _Type("nids.tls_selfsigned", "nids", 6, "ws srv", "none", "external", "", "443 8443", ("Self-signed certificate to rare host", "Expired certificate"), 0, True),
    _Type("nids.dns_nxdomain", "nids", 8, "ws", "none", "internal", "", "53", ("Many NXDOMAIN responses",), 0, True),
    _Type("nids.policy_p2p", "nids", 2, "ws", "none", "external", "", "6881 51413", ("P2P client detected",), 0, True),
    _Type("mail.phishing_link", "mail-gw", 6, "mail", "any", "inbound", "", "25", ("Phishing URL in message", "Lookalike domain link"), 1, True),
    _Type("mail.malicious_attachment", "mail-gw", 2, "mail", "any", "inbound", "", "25", ("Macro-enabled attachment", "Archive with executable"), 1, True),
    _Type("mail.spam_flood", "mail-gw", 5, "mail", "any", "inbound", "", "25", ("Bulk spam campaign",), 0, False),
    _Type("sys.backup_warning", "siem", 0.3, "srv db dc", "owner", "none", "backup-agent.exe", "", ("Backup completed with warnings",), 0, False),
    _Type("sys.patch_install", "siem", 0.5, "ws", "system", "none", "wuauclt.exe", "", ("Patch installed, reboot pending",), 0, False),
    _Type("sys.av_update_failed", "edr", 0.5, "ws srv", "system", "external", "MsMpEng.exe", "443", ("AV signature update failed",), 0, False),
    _Type("sys.cron_failure", "siem", 0.5, "web db srv", "owner", "none", "cron", "", ("Cron job exited non-zero",), 0, False),
    _Type("sys.disk_space_low", "siem", 0.5, "srv db", "system", "none", "", "", ("Disk space below 10%",), 1, False),
    _Type("sys.cert_expiry", "siem", 0.1, "web mail", "none", "none", "", "443", ("Certificate expires in 14 days",), 1, False),
    _Type("sys.time_drift", "siem", 0.05, "dc srv", "system", "none", "w32time", "123", ("Clock drift above 5 s",), 0, False),
)
_TYPE_INDEX = {t.name: i for i, t in enumerate(_CATALOG)}


@dataclass(frozen=True)
class _Technique:
    """An attack step: its alert type and how the attacker's alert looks.

    ``pool``: scan (recon before the exploit), exploit, discover (recon after it), lateral,
    privesc or exfil. ``at``: ``victim`` or the role of the host that observes the step.
    ``entry``: for exploits, roles of the first victim. ``repeat``: up to this many alerts.
    """

    pool: str
    type: str
    user: str  # victim | admin | none
    peer: str  # none | internal | external | inbound
    procs: str
    ports: str
    sigs: tuple[str, ...]
    sev: int
    at: str = "victim"
    entry: str = ""
    repeat: int = 1

    @property
    def stage(self) -> int:
        """Index into STAGES."""
        name = {"scan": "recon", "discover": "recon"}.get(self.pool, self.pool)
        return STAGES.index(name)


_TECHNIQUES = (
    _Technique("scan", "nids.port_scan", "none", "inbound", "", "22 80 443 445 3389 8080", ("ET SCAN Nmap SYN scan", "ET SCAN masscan"), 1, repeat=6),
    _Technique("scan", "fw.deny_inbound", "none", "inbound", "", "22 23 445 3389 5985", ("FW deny inbound TCP",), 0, at="fw", repeat=8),
    _Technique("scan", "nids.icmp_sweep", "none", "inbound", "", "", ("ICMP sweep",), 0, repeat=3),
    _Technique("exploit", "mail.phishing_link", "victim", "inbound", "", "25", ("Phishing URL in message", "Lookalike domain link"), 1, at="mail", entry="ws"),
    _Technique("exploit", "mail.malicious_attachment", "victim", "inbound", "", "25", ("Macro-enabled attachment", "Archive with executable"), 2, at="mail", entry="ws"),
    _Technique("exploit", "edr.office_macro_child", "victim", "external", "winword.exe excel.exe", "80 443", ("Office spawned cmd.exe", "Office spawned powershell.exe"), 2, entry="ws"),
    _Technique("exploit", "edr.suspicious_powershell", "victim", "external", "powershell.exe", "443 80 8443", ("Encoded PowerShell command", "PowerShell download cradle"), 2, entry="ws"),
    _Technique("exploit", "nids.web_exploit_attempt", "none", "inbound", "", "80 443 8080", ("ET WEB Apache Struts OGNL RCE", "ET EXPLOIT Log4j JNDI lookup", "ET WEB SQL injection UNION SELECT"), 2, entry="web", repeat=3),
    _Technique("exploit", "auth.brute_force", "victim", "inbound", "sshd lsass.exe", "22 3389", ("Multiple failed logins from one source",), 1, entry="srv web", repeat=4),
    _Technique("exploit", "auth.failed_login", "victim", "inbound", "lsass.exe sshd", "3389 22 445", ("4625 logon failure",), 0, entry="ws srv", repeat=6),
    _Technique("exploit", "edr.unsigned_binary", "victim", "none", "invoice_0423.exe setup_update.exe update.exe", "", ("Unsigned binary executed from Downloads", "Unsigned binary executed from Temp"), 1, entry="ws"),
    _Technique("discover", "edr.discovery_commands", "victim", "none", "net.exe nltest.exe whoami.exe adfind.exe", "", ("Domain discovery commands", "Account discovery burst"), 1, repeat=3),
    _Technique("discover", "nids.port_scan", "none", "internal", "", "445 3389 5985 22 1433", ("ET SCAN Nmap SYN scan", "ET SCAN internal host sweep"), 1, repeat=6),
    _Technique("discover", "nids.smb_enum", "none", "internal", "", "445", ("SMB share enumeration", "SMB null session"), 1, repeat=3),
    _Technique("discover", "nids.ldap_enum", "none", "internal", "", "389 636", ("LDAP bulk query", "SharpHound LDAP pattern"), 1, at="dc"),
    _Technique("lateral", "edr.service_installed", "admin", "internal", "psexesvc.exe svchost_upd.exe services.exe", "445", ("New service installed", "PsExec service created"), 2),
    _Technique("lateral", "auth.admin_login_new_host", "admin", "internal", "lsass.exe", "3389 445 5985", ("Admin logon to new host", "Explicit credential logon"), 1),
    _Technique("lateral", "nids.smb_remote_exec", "none", "internal", "", "445", ("SMB remote service exec", "SMB ADMIN$ write"), 2),
    _Technique("lateral", "nids.rdp_internal", "none", "internal", "", "3389", ("Internal RDP session", "RDP from workstation to server"), 1),
    _Technique("lateral", "edr.wmi_remote_exec", "admin", "internal", "wmiprvse.exe wmic.exe", "135", ("WMI remote process create",), 2),
    _Technique("privesc", "edr.lsass_access", "victim", "none", "procdump.exe rundll32.exe mimikatz.exe", "", ("LSASS memory read", "comsvcs.dll MiniDump"), 3),
    _Technique("privesc", "edr.process_injection", "victim", "none", "rundll32.exe powershell.exe svchost.exe", "", ("Remote thread in another process", "Hollowed process"), 2),
    _Technique("privesc", "edr.uac_bypass", "victim", "none", "fodhelper.exe eventvwr.exe", "", ("UAC bypass via registry",), 2),
    _Technique("privesc", "auth.kerberoast_tgs", "victim", "internal", "lsass.exe", "88", ("Many TGS requests RC4", "Kerberoasting pattern"), 2, at="dc"),
    _Technique("privesc", "auth.privileged_group_change", "admin", "internal", "lsass.exe", "389", ("User added to Domain Admins", "Privileged group membership change"), 3, at="dc"),
    _Technique("privesc", "edr.scheduled_task_created", "victim", "none", "schtasks.exe at.exe", "", ("Scheduled task created", "Task runs from Temp"), 1),
    _Technique("privesc", "edr.defender_disabled", "victim", "none", "powershell.exe sc.exe", "", ("Defender real-time protection disabled",), 2),
    _Technique("privesc", "edr.registry_run_key", "victim", "none", "reg.exe powershell.exe", "", ("Run key added",), 1),
    _Technique("exfil", "edr.archive_created", "victim", "none", "7z.exe rar.exe makecab.exe", "", ("Archive of many documents", "Password-protected archive created"), 1),
    _Technique("exfil", "nids.large_outbound", "none", "external", "", "443 8443 22", ("Large outbound transfer", "Upload to rare domain"), 1),
    _Technique("exfil", "nids.dns_tunnel", "none", "external", "", "53", ("Long DNS query names", "High-entropy DNS subdomains"), 2, repeat=5),
    _Technique("exfil", "nids.c2_beacon", "none", "external", "", "443 8080 4444", ("Periodic beacon to rare host", "Cobalt Strike default profile"), 2, repeat=3),
    _Technique("exfil", "edr.unsigned_binary", "victim", "external", "rclone.exe curl.exe", "443", ("Unsigned binary executed from Temp", "Cloud sync tool run by user"), 1),
    _Technique("exfil", "nids.tls_selfsigned", "none", "external", "", "443 8443", ("Self-signed certificate to rare host",), 0),
)

# Periodic jobs: type, host roles, interval (h), first run (h after midnight), jitter (min),
# process and user overrides ('' = as the type's noise).
_JOBS = (
    ("sys.backup_warning", "srv db dc", 24, 2.0, 15, "backup-agent.exe", "svc-backup"),
    ("sys.patch_install", "ws", 24, 12.5, 20, "", ""),
    ("sys.av_update_failed", "ws srv", 6, 0.5, 5, "", ""),
    ("sys.cron_failure", "web db srv", 1, 0.1, 1, "", ""),
    ("edr.scheduled_task_created", "ws srv", 24, 3.0, 10, "updater.exe", "SYSTEM"),
    ("edr.archive_created", "srv db", 24, 1.0, 10, "backup-agent.exe", "svc-backup"),
    ("nids.large_outbound", "srv db", 24, 1.5, 10, "", ""),
)
_FLOOD_TYPES = (
    "fw.deny_inbound", "nids.web_exploit_attempt", "auth.failed_login", "edr.pup_detected", "mail.spam_flood",
    "nids.dns_nxdomain",
)
_BURST_TYPES = (
    "auth.failed_login", "nids.port_scan", "fw.deny_inbound", "edr.pup_detected", "nids.tls_selfsigned",
    "auth.account_lockout", "nids.dns_nxdomain", "edr.unsigned_binary",
)
_CODE_COLUMNS = ("host", "type", "user", "process", "src_ip", "dst_ip", "dst_port", "signature", "severity")
_ATTR_CODES = ("user", "process", "src_ip", "dst_ip", "dst_port", "signature", "severity")
_TRUTH_COLUMNS = ("label", "template", "step", "stage", "instance")


@dataclass
class Simulation:
    """A simulated alert stream and its ground truth.

    alerts: one row per alert in time order, columns ``CSV_COLUMNS`` (time as float epoch
        seconds, strings as categoricals, ``step``/``template`` -1 and ``campaign``/``stage``
        empty for noise).
    patterns: the planted templates, each an ordered tuple of alert types.
    hosts: the host inventory (host, role, ip).
    """

    alerts: pd.DataFrame
    patterns: list[tuple[str, ...]]
    hosts: pd.DataFrame


@dataclass(frozen=True)
class _Template:
    """A campaign template: technique indices, lateral target roles, first victim role."""

    steps: tuple[int, ...]
    targets: tuple[str, ...]  # per step: role of the new victim for lateral steps, else ''
    entry: str

    @property
    def pattern(self) -> tuple[str, ...]:
        """The ordered alert types of the template."""
        return tuple(_TECHNIQUES[i].type for i in self.steps)


class _Vocab:
    """Strings to stable integer codes, in order of first use."""

    def __init__(self, first: tuple[str, ...] = ("",)) -> None:
        self.items: list[str] = []
        self.index: dict[str, int] = {}
        self.codes(first)

    def codes(self, words: str | list[str] | tuple[str, ...]) -> np.ndarray:
        """Codes of ``words`` (a space-separated string or a sequence), adding new ones."""
        words = (words.split() or [""]) if isinstance(words, str) else list(words)
        for w in words:
            if w not in self.index:
                self.index[w] = len(self.items)
                self.items.append(w)
        return np.array([self.index[w] for w in words], dtype=np.int32)


@dataclass
class _Env:
    """The enterprise: hosts, accounts, addresses, vocabularies and time profiles."""

    names: list[str]
    role: np.ndarray  # (hosts,) index into ROLES
    owner: np.ndarray  # (hosts,) user code of the host's account
    ip: np.ndarray  # (hosts,) ip code
    pull: np.ndarray  # (hosts,) probability of being an internal destination
    noisiness: np.ndarray  # (hosts,) relative noise rate
    ws_users: np.ndarray
    admins: np.ndarray
    ext_out: np.ndarray  # benign external destinations (popular first)
    ext_in: np.ndarray  # internet sources of inbound noise
    attackers: np.ndarray  # attacker infrastructure
    users: _Vocab
    ips: _Vocab
    procs: _Vocab
    ports: _Vocab
    sigs: _Vocab
    span: int  # seconds in the simulated period
    t0: int  # epoch seconds of the start
    office: np.ndarray  # (hours,) probability of each hour for office-hours types
    flat: np.ndarray
    _by_roles: dict[str, np.ndarray] = field(default_factory=dict)

    def hosts_of(self, roles: str) -> np.ndarray:
        """Host indices whose role is one of the space-separated ``roles``."""
        if roles not in self._by_roles:
            self._by_roles[roles] = np.flatnonzero(np.isin(self.role, [ROLES.index(r) for r in roles.split()]))
        return self._by_roles[roles]


def simulate_enterprise(**options: Any) -> Simulation:
    """Simulate alerts; options as in ``DEFAULTS`` (unknown keys raise DataError)."""
    opts = _options(options)
    seed = opts["seed"]
    env = _environment(opts, np.random.default_rng([seed, 1]))
    templates = _templates(seed, opts["n_campaigns"], opts["pattern_length"])
    attacks = _attacks(env, templates, opts, np.random.default_rng([seed, 2]))
    n_noise = max(0, opts["n_alerts"] - len(attacks["time"]))
    parts = [
        attacks,
        _periodic(env, round(PERIODIC_SHARE * n_noise), np.random.default_rng([seed, 3])),
        _floods(env, round(FLOOD_SHARE * n_noise), opts["days"], np.random.default_rng([seed, 4])),
        _bursts(env, round(BURST_SHARE * n_noise), np.random.default_rng([seed, 5])),
    ]
    rest = n_noise - sum(len(p["time"]) for p in parts[1:])
    parts.append(_background(env, max(0, rest), np.random.default_rng([seed, 6])))
    return Simulation(_frame(env, parts), [t.pattern for t in templates], _inventory(env))


def planted_patterns(seed: int = 0, **options: Any) -> list[tuple[str, ...]]:
    """The planted campaign templates (ordered alert types) for these options."""
    opts = _options({**options, "seed": seed})
    return [t.pattern for t in _templates(seed, opts["n_campaigns"], opts["pattern_length"])]


def load_enterprise_sim(path: str | None = None, **options: Any) -> AlertTable:
    """Simulated alerts as an AlertTable; alerts are generated, so ``path`` must be None.

    Entity = host, type = alert type, attributes ``ATTRIBUTES``; labels ``LABEL_COLUMNS``.
    """
    if path is not None:
        raise DataError(
            f"data=enterprise_sim generates its alerts and reads no file ({path}); leave out the path, or write "
            "a simulation with `car simulate --out FILE` and load it with data=csv"
        )
    frame = simulate_enterprise(**options).alerts
    return build_alert_table(
        frame[["time", "host", "type", *ATTRIBUTES]],
        source="enterprise_sim",
        time="time",
        entity="host",
        type="type",
        attributes=ATTRIBUTES,
        labels=frame[LABEL_COLUMNS].copy(),
        lines=np.arange(1, len(frame) + 1),
        time_unit="s",
    )


def write_simulation(out: str | Path, **options: Any) -> int:
    """Write simulated alerts with labels as CSV (time ISO 8601 UTC); returns the row count."""
    frame = simulate_enterprise(**options).alerts
    seconds = frame["time"].to_numpy(np.int64).astype("datetime64[s]")
    frame = frame.assign(time=np.datetime_as_string(seconds, unit="s", timezone="UTC"))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    frame[CSV_COLUMNS].to_csv(out, index=False)
    return len(frame)


# ---------------------------------------------------------------- options and environment


def _options(options: dict) -> dict:
    """Validated options with defaults filled in."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise DataError(f"enterprise_sim: unknown option {unknown[0]!r}; valid options: {', '.join(DEFAULTS)}")
    o = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    try:
        out = {k: _number(k, o[k]) for k in DEFAULTS if k != "start"}
        start = pd.Timestamp(str(o["start"]))
        if pd.isna(start):
            raise ValueError(f"start={o['start']!r} is not a date")
    except (TypeError, ValueError, OverflowError) as err:
        raise DataError(f"enterprise_sim: invalid option value ({err}); see conf/data/enterprise_sim.yaml") from None
    out["start"] = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    checks = {
        "seed": out["seed"] >= 0,
        "n_alerts": out["n_alerts"] >= 200,
        "n_hosts": out["n_hosts"] >= 12,
        "n_campaigns": 1 <= out["n_campaigns"] <= 50,
        "attack_fraction": 0.0 <= out["attack_fraction"] <= 0.5,
        "days": 1 <= out["days"] <= 3650,
        "noise": 0.0 <= out["noise"] <= 1.0,
        "pattern_length": 3 <= out["pattern_length"] <= 10,
        "gap_minutes": out["gap_minutes"] > 0,
        # The times a loader accepts (a `car simulate` CSV is read back with data=csv).
        "start": TIME_MIN <= out["start"] and out["start"] + pd.Timedelta(days=out["days"]) <= TIME_MAX,
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise DataError(
            f"enterprise_sim: {bad[0]}={out[bad[0]]} is out of range (seed >= 0, n_alerts >= 200, n_hosts >= 12, "
            "1 <= n_campaigns <= 50, 0 <= attack_fraction <= 0.5, 1 <= days <= 3650, 0 <= noise <= 1, "
            f"3 <= pattern_length <= 10, gap_minutes > 0, {TIME_MIN.date()} <= start, "
            f"start + days <= {TIME_MAX.date()})"
        )
    return out


def _number(key: str, value: Any) -> int | float:
    """``value`` as the type of the option's default: a whole number for the counts (2000.0 is 2000,
    2000.5 an error, not 2000), a finite number for the others; true/false is neither."""
    if isinstance(value, bool):
        raise ValueError(f"{key}={value!r} is not a number")
    number = type(DEFAULTS[key])(value)
    if isinstance(number, int) and not isinstance(value, int | str) and float(value) != number:
        raise ValueError(f"{key}={value!r} is not a whole number")
    if not math.isfinite(number):
        raise ValueError(f"{key}={value!r} is not finite")
    return number


def _role_counts(n_hosts: int) -> dict[str, int]:
    """How many hosts have each role; workstations take the rest."""
    counts = {
        "srv": max(2, n_hosts // 12), "mail": max(1, n_hosts // 80), "fw": 1 + n_hosts // 250,
        "dc": max(1, n_hosts // 60), "web": max(2, n_hosts // 25), "db": max(1, n_hosts // 40),
    }
    return {"ws": n_hosts - sum(counts.values()), **counts}


def _environment(opts: dict, rng: np.random.Generator) -> _Env:
    """Hosts, accounts, address pools, vocabularies and hourly time profiles."""
    counts = _role_counts(opts["n_hosts"])
    slots = [(r, i) for r, c in counts.items() for i in range(c)]
    role = np.array([ROLES.index(r) for r, _ in slots], np.int32)
    names = [f"{r}-{i + 1:03d}" for r, i in slots]
    users = _Vocab(("", "SYSTEM", "svc-backup", *SERVICE_ACCOUNTS.values()))
    admins = users.codes([f"adm-{i + 1:02d}" for i in range(max(2, opts["n_hosts"] // 30))])
    ws_users = users.codes([f"user{i + 1:04d}" for i in range(counts["ws"])])
    owner = np.array([users.index[SERVICE_ACCOUNTS[ROLES[r]]] if r else 0 for r in role], np.int32)
    owner[role == 0] = ws_users
    ips = _Vocab()
    ip = ips.codes([f"10.{ROLES.index(r) + 1}.{i // 250}.{i % 250 + 1}" for r, i in slots])
    external = ips.codes(_public_ips(rng, 300 + 2000 + 40))
    pull = np.array([ROLE_PULL[ROLES[r]] for r in role])
    t0 = int(opts["start"].timestamp())
    span = int(opts["days"] * 86400)
    return _Env(
        names=names, role=role, owner=owner, ip=ip, pull=pull / pull.sum(),
        noisiness=rng.lognormal(0.0, 0.8, len(role)), ws_users=ws_users, admins=admins,
        ext_out=external[:300], ext_in=external[300:2300], attackers=external[2300:],
        users=users, ips=ips, procs=_Vocab(), ports=_Vocab(), sigs=_Vocab(),
        span=span, t0=t0, office=_hour_profile(t0, span, office=True), flat=_hour_profile(t0, span, office=False),
    )


def _public_ips(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct public-looking IPv4 addresses."""
    first = np.array([23, 31, 45, 52, 64, 77, 91, 103, 104, 141, 151, 178, 176, 185, 193, 203, 212])
    m = 4 * n
    draws = np.column_stack([rng.choice(first, m), rng.integers(0, 256, (m, 2)), rng.integers(1, 255, m)])
    text = pd.unique(pd.Series([".".join(map(str, d)) for d in draws]))[:n]
    return list(text)


def _hour_profile(t0: int, span: int, office: bool) -> np.ndarray:
    """Probability of each hour of the period: working hours on weekdays dominate if ``office``."""
    hours = np.arange(math.ceil(span / 3600))
    stamp = pd.Timestamp(t0, unit="s", tz="UTC")
    hod = (stamp.hour + hours) % 24
    dow = (stamp.dayofweek + (stamp.hour + hours) // 24) % 7
    if office:
        weight = np.where((hod >= 8) & (hod < 18), 1.0, np.where((hod >= 7) & (hod < 21), 0.45, 0.12))
        weight = np.where(dow < 5, weight, 0.15)
    else:
        weight = np.ones(len(hours))
    return weight / weight.sum()


def _inventory(env: _Env) -> pd.DataFrame:
    """The hosts: name, role and address."""
    return pd.DataFrame({
        "host": env.names,
        "role": [ROLES[r] for r in env.role],
        "ip": [env.ips.items[i] for i in env.ip],
    })


# ---------------------------------------------------------------- templates


def _templates(seed: int, n_campaigns: int, pattern_length: int) -> list[_Template]:
    """``n_campaigns`` distinct templates (they depend on these three options only)."""
    rng = np.random.default_rng([seed, 0])
    out: dict[tuple[str, ...], _Template] = {}
    for _ in range(1000 * n_campaigns):
        tpl = _template(rng, pattern_length)
        out.setdefault(tpl.pattern, tpl)
        if len(out) == n_campaigns:
            return list(out.values())
    raise DataError(f"enterprise_sim: cannot plant {n_campaigns} distinct campaigns; lower n_campaigns")


def _template(rng: np.random.Generator, pattern_length: int) -> _Template:
    """One random kill-chain template of 3..pattern_length steps."""
    chain = _stage_chain(rng, int(rng.integers(3, pattern_length + 1)))
    steps: list[int] = []
    for pool in chain:
        cands = [
            i for i, t in enumerate(_TECHNIQUES)
            if t.pool == pool and (pool != "exploit" or t.entry)
            and not (steps and _TECHNIQUES[steps[-1]].type == t.type)
        ]
        fresh = [i for i in cands if i not in steps]
        steps.append(int(rng.choice(fresh or cands)))
    targets = tuple(
        str(rng.choice(LATERAL_TARGETS, p=LATERAL_P)) if _TECHNIQUES[i].pool == "lateral" else "" for i in steps
    )
    exploit = next(_TECHNIQUES[i] for i in steps if _TECHNIQUES[i].pool == "exploit")
    return _Template(tuple(steps), targets, str(rng.choice(exploit.entry.split())))


def _stage_chain(rng: np.random.Generator, length: int) -> list[str]:
    """Technique pools in kill-chain order: [scan] exploit (lateral|privesc|discover)* exfil."""
    head = ["scan", "exploit"] if rng.random() < 0.5 else ["exploit"]
    n_mid = length - len(head) - 1
    middle = list(rng.choice(["lateral", "privesc", "discover"], size=n_mid, p=[0.45, 0.4, 0.15]))
    if n_mid >= 2 and "lateral" not in middle:
        middle[int(rng.integers(n_mid))] = "lateral"
    return head + middle + ["exfil"]


# ---------------------------------------------------------------- attacks


def _attacks(env: _Env, templates: list[_Template], opts: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """All campaign instances: each template runs on several hosts at random times."""
    mean_len = np.mean([sum((_TECHNIQUES[i].repeat + 1) / 2 for i in t.steps) for t in templates])
    wanted = round(opts["attack_fraction"] * opts["n_alerts"] / mean_len)
    n_inst = max(wanted, len(templates)) if opts["attack_fraction"] > 0 else wanted
    which = rng.permutation(np.arange(n_inst) % len(templates))
    parts, first = [], 0
    for t, tpl in enumerate(templates):
        k = int((which == t).sum())
        if k:
            parts.append(_instances(env, tpl, t, k, first, opts["gap_minutes"] * 60, rng))
            first += k
    attacks = _concat(parts) if parts else _empty()
    if n_inst > wanted:
        _check_floor(len(attacks["time"]), len(templates), opts)
    return _add_noise(env, attacks, opts["noise"], rng)


def _check_floor(n_attacks: int, n_templates: int, opts: dict) -> None:
    """Each template runs at least once: say so when that makes the attack share 1.5 times
    ``attack_fraction`` or more, and refuse when attacks would outnumber benign alerts."""
    share, n_alerts = n_attacks / opts["n_alerts"], opts["n_alerts"]
    what = (f"each of the {n_templates} planted templates runs at least once: {n_attacks} attack alerts, "
            f"{share:.1%} of n_alerts={n_alerts} instead of attack_fraction={opts['attack_fraction']}")
    if share > 0.5:
        raise DataError(f"enterprise_sim: {what}; raise n_alerts or lower n_campaigns or pattern_length")
    if share >= 1.5 * opts["attack_fraction"]:
        log.warning("enterprise_sim: %s", what)


def _instances(
    env: _Env, tpl: _Template, t: int, k: int, first: int, gap: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """``k`` runs of one template; ``first`` = global number of its first run."""
    gaps = np.maximum(120, rng.lognormal(math.log(gap), 1.0, (k, len(tpl.steps)))).astype(np.int64)
    gaps[:, 0] = 0
    offset = _fit_in_period(gaps, env.span).cumsum(axis=1)
    start = _times(env, k, True, rng)
    start = np.minimum(start, np.maximum(0, env.span - offset[:, -1] - 60))
    victim = rng.choice(env.hosts_of(tpl.entry), k)
    ident = {"victim": env.owner[victim], "admin": rng.choice(env.admins, k), "none": np.zeros(k, np.int32)}
    attacker = rng.choice(env.attackers, k)
    steps = []
    for s, i in enumerate(tpl.steps):
        tech = _TECHNIQUES[i]
        prev = victim
        if tpl.targets[s]:
            victim = _other_host(env, tpl.targets[s], prev, rng)
        host = victim if tech.at == "victim" else rng.choice(env.hosts_of(tech.at), k)
        src, dst = _attack_peers(env, tech.peer, host, prev, attacker, rng)
        cols = {"time": start + offset[:, s], "host": host, "user": ident[tech.user], "src_ip": src, "dst_ip": dst}
        reps = rng.integers(1, tech.repeat + 1, k)
        part = {c: np.repeat(v, reps) for c, v in cols.items()}
        part["time"] = part["time"] + rng.integers(0, 60, len(part["time"]))
        run = np.repeat(first + np.arange(k), reps)
        steps.append(_attack_step(env, part, tech, rng) | _truth(len(run), t, s, tech.stage, run))
    return _concat(steps)


def _fit_in_period(gaps: np.ndarray, span: int) -> np.ndarray:
    """Shorten the gaps of runs that would not end within the period (its last minute excluded).

    Each shortened gap keeps at least 60 s, more than the jitter within a step, so steps stay
    in order; runs that fit are left as drawn.
    """
    room = span - 61 - 60 * (gaps.shape[1] - 1)  # seconds to share beyond the 60 s per gap
    excess = gaps[:, 1:].sum(axis=1) - 60 * (gaps.shape[1] - 1)
    long = gaps[:, 1:].sum(axis=1) > span - 61
    if not long.any():
        return gaps
    out = gaps.copy()
    scale = room / excess[long]
    out[long, 1:] = 60 + np.floor((gaps[long, 1:] - 60) * scale[:, None]).astype(np.int64)
    return out


def _other_host(env: _Env, role: str, prev: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A host of ``role`` for each run, other than ``prev`` where the role has another host."""
    pool = env.hosts_of(role)
    pick = rng.integers(0, len(pool), len(prev))
    same = pool[pick] == prev
    pick[same] = (pick[same] + 1) % len(pool)
    return pool[pick]


def _attack_peers(
    env: _Env, peer: str, host: np.ndarray, prev: np.ndarray, attacker: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Source and destination addresses of attack steps."""
    if peer == "inbound":
        return attacker, env.ip[host]
    if peer == "external":
        return env.ip[host], attacker
    if peer == "internal":
        other = rng.choice(len(env.ip), len(host), p=env.pull)
        return env.ip[prev], env.ip[np.where(host != prev, host, other)]
    return env.ip[host], np.zeros(len(host), np.int32)


def _attack_step(env: _Env, part: dict, tech: _Technique, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The attacker's process, port, signature and severity, varying per alert."""
    n = len(part["time"])
    part["type"] = np.full(n, _TYPE_INDEX[tech.type], np.int32)
    part["process"] = rng.choice(env.procs.codes(tech.procs), n)
    part["dst_port"] = rng.choice(env.ports.codes(tech.ports), n)
    part["signature"] = rng.choice(env.sigs.codes(tech.sigs), n)
    part["severity"] = _severity(rng, tech.sev, n, (0.25, 0.5, 0.25))
    return part


def _truth(n: int, template: int, step: int, stage: int, instance: np.ndarray) -> dict[str, np.ndarray]:
    """Ground-truth columns of ``n`` attack alerts of one step."""
    return {
        "label": np.ones(n, np.int8), "template": np.full(n, template, np.int16),
        "step": np.full(n, step, np.int16), "stage": np.full(n, stage, np.int8),
        "instance": instance.astype(np.int32),
    }


def _add_noise(env: _Env, attacks: dict, noise: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Replace each attribute of each attack alert by a benign-looking one with prob. ``noise``."""
    benign = _benign(env, attacks["type"], attacks["host"], rng)
    for col in _ATTR_CODES:
        swap = rng.random(len(attacks["time"])) < noise
        attacks[col] = np.where(swap, benign[col], attacks[col])
    return attacks


# ---------------------------------------------------------------- benign alerts


def _benign(env: _Env, types: np.ndarray, hosts: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Benign-looking attributes for alerts of the given types on the given hosts."""
    n = len(types)
    out = {c: np.zeros(n, np.int32) for c in _ATTR_CODES}
    order = np.argsort(types, kind="stable")
    bounds = np.searchsorted(types[order], np.arange(len(_CATALOG) + 1))
    for t, spec in enumerate(_CATALOG):
        idx = order[bounds[t]:bounds[t + 1]]
        if not len(idx):
            continue
        h = hosts[idx]
        out["process"][idx] = _zipf_pick(rng, env.procs.codes(spec.procs), len(idx))
        out["dst_port"][idx] = _zipf_pick(rng, env.ports.codes(spec.ports), len(idx))
        out["signature"][idx] = _zipf_pick(rng, env.sigs.codes(spec.sigs), len(idx))
        out["severity"][idx] = _severity(rng, spec.sev, len(idx), (0.15, 0.7, 0.15))
        out["user"][idx] = _benign_user(env, spec.user, h, rng)
        out["src_ip"][idx], out["dst_ip"][idx] = _benign_peers(env, spec.peer, h, rng)
    return out


def _zipf_pick(rng: np.random.Generator, codes: np.ndarray, n: int) -> np.ndarray:
    """Draw from ``codes`` with Zipf-like weights (the first is the most common)."""
    p = 1.0 / np.arange(1, len(codes) + 1) ** 1.3
    return rng.choice(codes, n, p=p / p.sum())


def _severity(rng: np.random.Generator, base: int, n: int, spread: tuple[float, float, float]) -> np.ndarray:
    """Severity codes around ``base``: one lower, same, one higher with probabilities ``spread``."""
    return np.clip(base + rng.choice([-1, 0, 1], n, p=spread), 0, len(SEVERITIES) - 1).astype(np.int32)


def _benign_user(env: _Env, mode: str, hosts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """User codes of benign alerts: the host's account, anyone, an admin, SYSTEM or none."""
    n = len(hosts)
    if mode == "owner":
        anyone = rng.choice(env.ws_users, n)
        return np.where(rng.random(n) < 0.05, anyone, env.owner[hosts])
    if mode == "any":
        return rng.choice(env.ws_users, n)
    if mode == "admin":
        return _zipf_pick(rng, env.admins, n)
    return np.full(n, env.users.index["SYSTEM"] if mode == "system" else 0, np.int32)


def _benign_peers(
    env: _Env, mode: str, hosts: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Source and destination address codes of benign alerts."""
    n = len(hosts)
    own = env.ip[hosts]
    if mode == "internal":
        return own, env.ip[rng.choice(len(env.ip), n, p=env.pull)]
    if mode == "external":
        return own, _zipf_pick(rng, env.ext_out, n)
    if mode == "inbound":
        return rng.choice(env.ext_in, n), own
    workstation = env.ip[rng.choice(env.hosts_of("ws"), n)]
    if mode == "transit":
        return workstation, _zipf_pick(rng, env.ext_out, n)
    if mode == "login":
        return workstation, own
    return own, np.zeros(n, np.int32)


def _times(env: _Env, n: int, office: bool, rng: np.random.Generator) -> np.ndarray:
    """``n`` times (seconds after the start) drawn from the hourly profile."""
    hours = rng.choice(len(env.office), n, p=env.office if office else env.flat)
    return np.minimum(hours * 3600 + rng.integers(0, 3600, n), env.span - 1).astype(np.int64)


def _noise_part(
    env: _Env, types: np.ndarray, hosts: np.ndarray, times: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Benign alerts with attributes drawn per alert."""
    n = len(types)
    part = {"time": times.astype(np.int64), "host": hosts.astype(np.int32), "type": types.astype(np.int32)}
    part |= _benign(env, part["type"], part["host"], rng)
    return part | {
        "label": np.zeros(n, np.int8), "template": np.full(n, -1, np.int16), "step": np.full(n, -1, np.int16),
        "stage": np.zeros(n, np.int8), "instance": np.full(n, -1, np.int32),
    }


def _background(env: _Env, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Background false positives: types by weight, hosts by noisiness, times by profile."""
    weights = np.array([t.weight for t in _CATALOG])
    types = np.sort(rng.choice(len(_CATALOG), n, p=weights / weights.sum())).astype(np.int32)
    hosts = np.empty(n, np.int32)
    times = np.empty(n, np.int64)
    bounds = np.searchsorted(types, np.arange(len(_CATALOG) + 1))
    for t, spec in enumerate(_CATALOG):
        lo, hi = bounds[t], bounds[t + 1]
        hosts[lo:hi] = _noisy_hosts(env, spec.roles, hi - lo, rng)
        times[lo:hi] = _times(env, hi - lo, spec.office, rng)
    return _noise_part(env, types, hosts, times, rng)


def _noisy_hosts(env: _Env, roles: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` hosts of the given roles, noisier hosts more often."""
    pool = env.hosts_of(roles)
    w = env.noisiness[pool]
    return rng.choice(pool, n, p=w / w.sum())


def _periodic(env: _Env, budget: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Jobs at fixed intervals on some hosts, about ``budget`` alerts in all."""
    parts = [_job(env, job, budget / len(_JOBS), rng) for job in _JOBS]
    return _concat(parts)


def _job(env: _Env, job: tuple, budget: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One periodic job: same attributes each run, a fixed per-host phase and small jitter."""
    name, roles, interval, first, jitter, proc, user = job
    runs = max(1, int(env.span // (interval * 3600)))
    pool = env.hosts_of(roles)
    n_hosts = int(np.clip(round(budget / runs), 1, len(pool)))
    stride = max(1, math.ceil(runs / max(budget, 1))) if n_hosts == 1 else 1
    hosts = rng.choice(pool, n_hosts, replace=False)
    k = np.arange(0, runs, stride)
    phase = rng.integers(0, 1800, n_hosts)
    times = first * 3600 + phase[:, None] + k[None, :] * interval * 3600
    times = (times + rng.normal(0, jitter * 60, times.shape)).astype(np.int64).ravel()
    host_of = np.repeat(hosts, len(k))
    keep = (times >= 0) & (times < env.span)
    part = _noise_part(env, np.full(keep.sum(), _TYPE_INDEX[name]), host_of[keep], times[keep], rng)
    _, first_idx, inverse = np.unique(host_of[keep], return_index=True, return_inverse=True)
    first_row = first_idx[inverse]  # same attributes for every run on a host
    part = _same_as_first(part, _ATTR_CODES, first_row)
    if proc:
        part["process"][:] = env.procs.codes([proc])[0]
    if user:
        part["user"][:] = env.users.codes([user])[0]
    return part


def _floods(env: _Env, budget: int, days: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A few floods: one signature on one host, identical alerts, within 1-6 hours."""
    n_floods = max(1, round(days / 5))
    share = 0.5 ** np.arange(n_floods)
    sizes = np.floor(budget * share / share.sum()).astype(int)
    parts = []
    for size in sizes[sizes > 0]:
        spec = _CATALOG[_TYPE_INDEX[str(rng.choice(_FLOOD_TYPES))]]
        host = rng.choice(env.hosts_of(spec.roles))
        start = _times(env, 1, spec.office, rng)[0]
        times = np.minimum(start + rng.integers(0, int(rng.uniform(1, 6) * 3600), size), env.span - 1)
        part = _noise_part(env, np.full(size, _TYPE_INDEX[spec.name]), np.full(size, host), np.sort(times), rng)
        parts.append(_same_as_first(part, _ATTR_CODES, np.zeros(size, np.int64)))
    return _concat(parts) if parts else _empty()


def _bursts(env: _Env, budget: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Many short bursts: one type on one host from one actor within minutes."""
    sizes = np.clip(rng.lognormal(math.log(30), 0.8, max(1, budget // 30) * 2), 5, 300).astype(int)
    sizes = sizes[: max(1, np.searchsorted(sizes.cumsum(), budget))]
    n = int(sizes.sum())
    burst = np.repeat(np.arange(len(sizes)), sizes)
    kinds = rng.choice([_TYPE_INDEX[t] for t in _BURST_TYPES], len(sizes))
    hosts = np.array([rng.choice(env.hosts_of(_CATALOG[k].roles)) for k in kinds], np.int32)
    start = _times(env, len(sizes), True, rng)
    length = rng.integers(60, 1800, len(sizes))
    times = np.minimum(start[burst] + (rng.random(n) * length[burst]).astype(np.int64), env.span - 1)
    part = _noise_part(env, kinds[burst], hosts[burst], times, rng)
    first_row = np.concatenate([[0], sizes.cumsum()[:-1]])[burst]
    return _same_as_first(part, ("user", "process", "src_ip"), first_row)


def _same_as_first(part: dict, cols: tuple[str, ...], first_row: np.ndarray) -> dict[str, np.ndarray]:
    """Give each alert the values of ``cols`` of its group's first row."""
    for col in cols:
        part[col] = part[col][first_row]
    return part


# ---------------------------------------------------------------- assembly


def _empty() -> dict[str, np.ndarray]:
    """A part with no alerts."""
    return {c: np.zeros(0, np.int64) for c in ("time", *_CODE_COLUMNS, *_TRUTH_COLUMNS)}


def _concat(parts: list[dict]) -> dict[str, np.ndarray]:
    """Concatenate parts column by column."""
    return {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}


def _frame(env: _Env, parts: list[dict]) -> pd.DataFrame:
    """The alert frame in time order, strings as categoricals."""
    cols = _concat(parts)
    order = np.argsort(cols["time"], kind="stable")
    cols = {c: v[order] for c, v in cols.items()}
    vocab = {
        "host": env.names, "type": [t.name for t in _CATALOG], "user": env.users.items, "process": env.procs.items,
        "src_ip": env.ips.items, "dst_ip": env.ips.items, "dst_port": env.ports.items,
        "signature": env.sigs.items, "severity": list(SEVERITIES),
    }
    frame = {"time": (cols["time"] + env.t0).astype(np.float64)}
    frame |= {c: _categorical(cols[c], vocab[c]) for c in ("host", "type")}
    frame |= {c: _categorical(cols[c], vocab[c]) for c in _ATTR_CODES}
    detectors = list(dict.fromkeys(t.detector for t in _CATALOG))
    det_code = np.array([detectors.index(t.detector) for t in _CATALOG], np.int32)
    frame["detector"] = _categorical(det_code[cols["type"]], detectors)
    frame["label_attack"] = cols["label"].astype(np.int8)
    frame["campaign"] = _campaigns(cols["instance"], cols["template"])
    frame["step"] = cols["step"].astype(np.int16)
    frame["stage"] = _categorical(cols["stage"], list(STAGES))
    frame["template"] = cols["template"].astype(np.int16)
    return pd.DataFrame(frame)


def _categorical(codes: np.ndarray, categories: list[str]) -> pd.Categorical:
    """Codes to a categorical of the used categories only."""
    used = np.bincount(codes, minlength=len(categories)) > 0
    new_code = (np.cumsum(used) - 1).astype(np.int32)
    return pd.Categorical.from_codes(new_code[codes], categories=[c for c, u in zip(categories, used) if u])


def _campaigns(instance: np.ndarray, template: np.ndarray) -> pd.Categorical:
    """Campaign ids ``C<template>-<run>`` (1-based) for attack alerts, '' for noise."""
    ids, first = np.unique(instance[instance >= 0], return_index=True)
    tpl = template[instance >= 0][first]
    run = np.zeros(len(ids), int)
    for t in np.unique(tpl):
        run[tpl == t] = np.arange((tpl == t).sum())
    names = [""] + [f"C{t + 1}-{r + 1:04d}" for t, r in zip(tpl, run)]
    codes = np.searchsorted(ids, instance) + 1
    return pd.Categorical.from_codes(np.where(instance >= 0, codes, 0), categories=names)
