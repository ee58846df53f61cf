"""A configuration file read and run: inputs through filters to Kinesis record bytes."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from cali_local.fluentbit.config import KUBERNETES_CONFIG, MAX_EVENT_SIZE, EmulationError
from cali_local.fluentbit.parsers import MultilineParser, Parser, _strftime_precision
from cali_local.fluentbit.records import Event, KinesisRecord, LogSource, PipelineStats
from cali_local.fluentbit.stages import (
    _Filter,
    _KubernetesFilter,
    _ModifyFilter,
    _MultilineFilter,
    _MultilineStream,
    _ParserFilter,
    _unit_size,
)


@dataclass
class FluentBitConfig:
    path: Path
    parsers: dict[str, Parser]
    multiline: dict[str, MultilineParser]
    inputs: list[dict[str, Any]]
    filters: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    raw: dict[str, Any] = field(repr=False)


def load_config(path: str | Path) -> FluentBitConfig:
    """Read a Fluent Bit YAML file and everything it includes."""
    main = Path(path).resolve()
    documents = _read_with_includes(main)
    parsers: dict[str, Parser] = {}
    multiline: dict[str, MultilineParser] = {}
    pipeline: dict[str, Any] = {}
    for doc in documents:
        for spec in doc.get("parsers") or []:
            parser = Parser(spec)
            parsers[parser.name] = parser
        for spec in doc.get("multiline_parsers") or []:
            ml = MultilineParser(spec)
            multiline[ml.name] = ml
        if "pipeline" in doc:
            pipeline = doc["pipeline"] or {}
    return FluentBitConfig(
        path=main,
        parsers=parsers,
        multiline=multiline,
        inputs=list(pipeline.get("inputs") or []),
        filters=list(pipeline.get("filters") or []),
        outputs=list(pipeline.get("outputs") or []),
        raw=documents[0],
    )


def _read_with_includes(path: Path, seen: frozenset[Path] = frozenset()) -> list[dict[str, Any]]:
    if path in seen:
        raise EmulationError(f"include loop at {path}")
    with path.open(encoding="utf-8") as handle:
        doc = yaml.safe_load(handle) or {}
    if not isinstance(doc, dict):
        raise EmulationError(f"{path}: top level must be a mapping")
    docs = [doc]
    for include in doc.get("includes") or []:
        docs.extend(_read_with_includes((path.parent / str(include)).resolve(), seen | {path}))
    return docs


class FluentBitPipeline:
    """Runs lines through one of our Fluent Bit configurations.

    >>> pipeline = FluentBitPipeline.load(FILES_CONFIG, env={...})   # doctest: +SKIP
    >>> records = pipeline.run(lines, LogSource("/var/log/app/checkout.log"), time=now)  # doctest: +SKIP
    """

    def __init__(self, config: FluentBitConfig, env: Mapping[str, str]) -> None:
        self.config = config
        self.env = dict(env)
        if len(config.inputs) != 1 or config.inputs[0].get("name") != "tail":
            raise EmulationError("exactly one tail input is emulated")
        tail = config.inputs[0]
        self.tag_prefix = str(tail.get("tag", "tail.*")).split("*")[0]
        self.path_key: str | None = tail.get("path_key")
        # tail: a line longer than buffer_max_size is skipped (skip_long_lines on) or stops
        # the file; either way it never reaches the output, so it is counted here.
        self.buffer_max_size = _unit_size(str(tail.get("buffer_max_size", "32k")))
        ml_names = [n.strip() for n in str(tail.get("multiline.parser", "")).split(",") if n.strip()]
        self.container_framing = bool(ml_names) and set(ml_names) <= {"cri", "docker"}
        self.input_multiline: MultilineParser | None = None
        if ml_names and not self.container_framing:
            if len(ml_names) != 1 or ml_names[0] not in config.multiline:
                raise EmulationError(f"tail: one custom multiline parser is emulated, got {ml_names}")
            self.input_multiline = config.multiline[ml_names[0]]
        self.filter_specs = config.filters
        outputs = [o for o in config.outputs if o.get("name") == "kinesis_streams"]
        if len(outputs) != 1:
            raise EmulationError("exactly one kinesis_streams output is emulated")
        out = outputs[0]
        self.time_key: str | None = out.get("time_key")
        self.time_key_format = str(out.get("time_key_format", "%Y-%m-%dT%H:%M:%S"))
        if out.get("log_key"):
            raise EmulationError("kinesis_streams log_key is not emulated")
        self.stats = PipelineStats()

    @classmethod
    def load(
        cls, config: str | Path = KUBERNETES_CONFIG, env: Mapping[str, str] | None = None
    ) -> FluentBitPipeline:
        return cls(load_config(config), os.environ if env is None else env)

    @property
    def is_kubernetes(self) -> bool:
        return any(spec.get("name") == "kubernetes" for spec in self.filter_specs)

    def session(self) -> PipelineSession:
        return PipelineSession(self)

    def run(
        self,
        lines: Iterable[str],
        source: LogSource,
        *,
        time: datetime | Callable[[], datetime] | None = None,
    ) -> list[KinesisRecord]:
        """All records for ``lines`` from one source, flushing at the end."""
        session = self.session()
        out: list[KinesisRecord] = []
        for line in lines:
            out.extend(session.feed(line, source, time=time))
        out.extend(session.close())
        return out

    def tag_for(self, source: LogSource) -> str:
        return self.tag_prefix + source.path.strip("/").replace("/", ".")

    def to_kinesis(self, event: Event) -> KinesisRecord | None:
        """plugins/out_kinesis_streams/kinesis_api.c: process_event()."""
        text = json.dumps(event.body, separators=(",", ":"), ensure_ascii=True)
        if len(text) <= 2:
            self.stats.discarded_empty += 1
            return None
        if len(text) + 1 >= MAX_EVENT_SIZE:
            self.stats.discarded_oversize += 1
            return None
        if self.time_key:
            stamp = _strftime_precision(event.time, self.time_key_format)
            text = text[:-1] + "," + json.dumps(self.time_key) + ":" + json.dumps(stamp) + "}"
        data = (text + "\n").encode("utf-8")
        if len(data) >= MAX_EVENT_SIZE:
            self.stats.discarded_oversize += 1
            return None
        self.stats.records_out += 1
        if "log" in event.body:
            self.stats.records_unparsed += 1
        return KinesisRecord(data=data, time=event.time, source=event.source)


class PipelineSession:
    """Feeds lines from any number of sources; keeps per-stream multiline state."""

    def __init__(self, pipeline: FluentBitPipeline) -> None:
        self.pipeline = pipeline
        config = pipeline.config
        self.filters: list[_Filter] = []
        for spec in pipeline.filter_specs:
            name = spec.get("name")
            if name == "multiline":
                self.filters.append(_MultilineFilter(spec, config.multiline))
            elif name == "parser":
                self.filters.append(_ParserFilter(spec, config.parsers))
            elif name == "kubernetes":
                self.filters.append(_KubernetesFilter(spec))
            elif name == "modify":
                self.filters.append(_ModifyFilter(spec, pipeline.env))
            else:
                raise EmulationError(f"filter {name!r} is not emulated")
        self.input_streams: dict[str, _MultilineStream] = {}

    def feed(
        self,
        line: str,
        source: LogSource,
        *,
        time: datetime | Callable[[], datetime] | None = None,
    ) -> list[KinesisRecord]:
        """One raw line (without its newline) as the application wrote it."""
        pipeline = self.pipeline
        pipeline.stats.lines_in += 1
        if len(line.encode("utf-8", "surrogateescape")) + 1 > pipeline.buffer_max_size:
            pipeline.stats.skipped_long_lines += 1
            return []
        moment = time() if callable(time) else (time or datetime.now(UTC))
        tag = pipeline.tag_for(source)
        body: dict[str, Any] = {"log": line}
        if pipeline.container_framing:
            body["stream"] = source.stream
        if pipeline.path_key:
            body[pipeline.path_key] = source.path
        event = Event(time=moment, body=body, source=source, tag=tag)
        if pipeline.input_multiline is not None:
            stream = self.input_streams.setdefault(tag, _MultilineStream(pipeline.input_multiline, None))
            events = stream.feed(event)
        else:
            events = [event]
        return self._through_filters(events, 0)

    def close(self) -> list[KinesisRecord]:
        """End of input: flush pending multiline events (Fluent Bit's flush_timeout)."""
        out: list[KinesisRecord] = []
        for stream in self.input_streams.values():
            out.extend(self._through_filters(stream.flush(), 0))
        for index, filt in enumerate(self.filters):
            out.extend(self._through_filters(filt.flush(), index + 1))
        return out

    def _through_filters(self, events: list[Event], start: int) -> list[KinesisRecord]:
        current = events
        for filt in self.filters[start:]:
            nxt: list[Event] = []
            for event in current:
                if filt.applies(event.tag):
                    nxt.extend(filt.process(event))
                else:
                    nxt.append(event)
            current = nxt
        out: list[KinesisRecord] = []
        for event in current:
            self.pipeline.stats.events_grouped += 1
            record = self.pipeline.to_kinesis(event)
            if record is not None:
                out.append(record)
        return out


def iter_file_records(
    path: str | Path,
    pipeline: FluentBitPipeline,
    *,
    source: LogSource | None = None,
    time: datetime | Callable[[], datetime] | None = None,
) -> Iterator[KinesisRecord]:
    """Stream a raw log file through the pipeline, as ``tail`` would read it."""
    src = source or LogSource(path=str(Path(path).resolve()))
    session = pipeline.session()
    with Path(path).open(encoding="utf-8", errors="replace", newline="") as handle:
        for raw in handle:
            yield from session.feed(raw.rstrip("\r\n"), src, time=time)
    yield from session.close()
