"""`cali demo --input`: raw syslog, logcat and log4j files alert as production would on them.

The files carry no JSON and (syslog) no level word; the incidents must still open, with the
lines' own times as first/last seen (a 2015 Hadoop error is not "first seen today") and
the level CALI read or inferred. One run for the module (about 20 s).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cali_local.demo_inputs import (
    PRODUCTION_THROTTLE_WINDOW_SECONDS,
    REPLAY_ENV,
    files_waves,
    input_files,
    summarise_input,
)
from cali_local.pipeline import PipelineOptions, PipelineReport, run_pipeline

pytestmark = [pytest.mark.xdist_group("pipeline"), pytest.mark.slow]

SYSLOG = (
    "\n".join(
        f"Nov 20 06:55:{40 + i:02d} bastion sshd[24{i:03d}]: Failed password for invalid user admin{i} "
        f"from 173.234.31.{i} port {38000 + i} ssh2"
        for i in range(8)
    )
    + "\nNov 20 06:56:00 bastion sshd[24100]: Accepted publickey for deploy from 10.0.0.5 port 50122 ssh2\n"
)
LOGCAT = (
    "03-17 16:13:38.811  1702  2395 D WindowManager: printFreezingDisplayLogsopening app wtoken\n"
    + "".join(
        f"03-17 16:13:4{i}.102  1702  8671 E ActivityManager: ANR in com.example.app (pid {4000 + i})\n"
        for i in range(5)
    )
)
LOG4J = (
    "".join(
        f"2015-10-18 18:10:0{i},001 ERROR [RMCommunicator Allocator] "
        f"org.apache.hadoop.mapreduce.v2.app.rm.RMContainerAllocator: ERROR IN CONTACTING RM attempt {i}.\n"
        for i in range(6)
    )
    + "2015-10-18 18:10:09,500 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: still running\n"
)


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, PipelineReport]:
    logs = tmp_path_factory.mktemp("logs")
    (logs / "auth.log").write_text(SYSLOG, encoding="utf-8")
    (logs / "android.log").write_text(LOGCAT, encoding="utf-8")
    (logs / "hadoop.log").write_text(LOG4J, encoding="utf-8")
    waves = files_waves(input_files([logs]))
    summary = summarise_input(waves)
    report = run_pipeline(
        PipelineOptions(
            scenario="input",
            waves=waves,
            workdir=tmp_path_factory.mktemp("pipeline"),
            throttle_window_seconds=PRODUCTION_THROTTLE_WINDOW_SECONDS,
            extra_env=REPLAY_ENV,
            shards=1,  # one batch per file: the first alert counts every occurrence
        )
    )
    return summary, report


def _incident(report: PipelineReport, service: str) -> dict[str, Any]:
    found = [i for i in report.incidents if service in i["services"]]
    assert len(found) == 1, (service, report.incidents)
    return found[0]


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_every_record_is_accounted_for(replay: tuple[Any, PipelineReport]) -> None:
    _, report = replay
    assert all(report.conservation.values()), report.conservation
    assert report.dlq == []  # every readable line is a record, none is bad data


def test_level_less_syslog_failures_open_an_inferred_warn_incident(
    replay: tuple[Any, PipelineReport],
) -> None:
    _, report = replay
    incident = _incident(report, "auth")  # Fluent Bit names the service after the file
    assert incident["level"] == "WARN"
    assert incident["count"] == 8
    assert (
        _time(incident["first_seen"]).year == datetime.now(UTC).year
        or _time(incident["first_seen"]).month == 11
    )
    assert (_time(incident["first_seen"]).month, _time(incident["first_seen"]).day) == (11, 20)
    assert _time(incident["first_seen"]).strftime("%H:%M:%S") == "06:55:40"
    assert _time(incident["last_seen"]).strftime("%H:%M:%S") == "06:55:47"


def test_logcat_errors_keep_their_own_time(replay: tuple[Any, PipelineReport]) -> None:
    _, report = replay
    incident = _incident(report, "android")
    assert incident["level"] == "ERROR"
    assert incident["count"] == 5
    first, last = _time(incident["first_seen"]), _time(incident["last_seen"])
    assert (first.month, first.day, first.strftime("%H:%M:%S.%f")[:12]) == (3, 17, "16:13:40.102")
    assert last.strftime("%H:%M:%S") == "16:13:44"


def test_a_2015_hadoop_error_is_first_seen_in_2015(replay: tuple[Any, PipelineReport]) -> None:
    _, report = replay
    incident = _incident(report, "hadoop")
    assert incident["level"] == "ERROR"
    assert incident["count"] == 6
    assert _time(incident["first_seen"]) == datetime(2015, 10, 18, 18, 10, 0, 1000, tzinfo=UTC)
    assert _time(incident["last_seen"]) == datetime(2015, 10, 18, 18, 10, 5, 1000, tzinfo=UTC)
    assert "ERROR IN CONTACTING RM" in incident["template"]


def test_the_report_names_the_formats_and_the_inferred_levels(replay: tuple[Any, PipelineReport]) -> None:
    summary, _ = replay
    assert summary.formats == {"syslog": 9, "logcat": 6, "iso-level-logger": 7}
    assert summary.level_sources["inferred"] == 8
    assert summary.inferred == {"WARN": 8}
