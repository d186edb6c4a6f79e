"""Splink on Spark: the linking engine for when one machine is not enough.

A :class:`SparkEngine` is a context manager around one local Spark session (``local[cores]``, the driver's
memory set before its JVM starts). Everything it writes (Spark's scratch space, Splink's checkpoints, the JVM's
log, the tables it exchanges) lives in one temporary directory, removed with the session. The JVM's output goes
to that log, not to the terminal; it listens on the loopback address only. Leaving the block stops the session
and ends the JVM, so that another engine in the same process starts afresh with its own settings.

The two prepared tables go to Spark as Parquet files and the predictions come back the same way: the form a
cluster reads from shared storage, and at 1 M rows as fast here as handing Spark Arrow batches through the
driver (docs/benchmarks.md). Splink's Spark backend needs its Scala UDF jar for ``damerau_levenshtein``, which
the fuzzy phone levels use; it ships with Splink and is put on the session's class path.

Spark needs Java 17 or later: without it, or without pyspark (the ``spark`` extra), entering the
engine raises :class:`~cove.partner.engines.EngineError` with one line saying so, and so does a failure of the
JVM while it runs.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import duckdb

from cove.partner.engines import INPUTS, EngineError, portable_api

if TYPE_CHECKING:
    from splink import Linker, SettingsCreator

MIN_JAVA = 17  # Spark 4 runs on Java 17 and 21
PREDICTIONS = "spark_predictions"  # the table predict() leaves in the working database
_MEMORY = re.compile(r"[1-9][0-9]*[mg]")
# Warnings and errors go to the JVM's log in the work directory; the terminal gets none of Spark's INFO chatter.
_LOG4J = """\
rootLogger.level = warn
rootLogger.appenderRef.file.ref = stderr
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""


@dataclass(frozen=True)
class SparkSettings:
    """A local session's size: ``cores`` worker threads, ``memory`` for the driver's JVM ("4g", "512m")."""

    cores: int = 2
    memory: str = "4g"
    # Spark's default of 200 shuffle partitions is for clusters: locally each costs a task and a file.
    shuffle_partitions: int | None = None  # None: 4 per core

    def __post_init__(self) -> None:
        if self.cores < 1:
            raise EngineError(f"Spark needs at least one core, not {self.cores}")
        if not _MEMORY.fullmatch(self.memory):
            raise EngineError(f"Spark driver memory {self.memory!r} is not a size such as 4g or 512m")
        if self.shuffle_partitions is not None and self.shuffle_partitions < 1:
            raise EngineError(f"Spark needs at least one shuffle partition, not {self.shuffle_partitions}")

    @property
    def partitions(self) -> int:
        return self.shuffle_partitions or 4 * self.cores


def spark_conf(settings: SparkSettings, work: Path, jar: str) -> dict[str, str]:
    """The session's configuration, every path under ``work``."""
    java_options = f"-Dlog4j2.configurationFile=file:{work / 'log4j2.properties'} -Djava.io.tmpdir={work / 'tmp'}"
    return {
        "spark.master": f"local[{settings.cores}]",
        "spark.app.name": "cove-partner-link",
        "spark.driver.memory": settings.memory,
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.extraJavaOptions": java_options,
        "spark.jars": jar,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": str(settings.partitions),
        "spark.default.parallelism": str(settings.partitions),
        "spark.local.dir": str(work / "local"),
        "spark.sql.warehouse.dir": str(work / "warehouse"),
    }


def java_executable(environ: Mapping[str, str]) -> str | None:
    """The ``java`` Spark's launcher would run: ``$JAVA_HOME/bin/java`` when JAVA_HOME is set, else the PATH's."""
    home = environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        return str(java) if os.access(java, os.X_OK) else None
    return shutil.which("java", path=environ.get("PATH", os.defpath))


def java_major(version_output: str) -> int | None:
    """The major version in ``java -version`` output: 17 for "17.0.15", 8 for the old "1.8.0_392" style."""
    found = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if found is None:
        return None
    major, minor = int(found[1]), int(found[2] or 0)
    return minor if major == 1 else major


def check_java(environ: Mapping[str, str]) -> None:
    """Raise :class:`EngineError` unless a Java that Spark can run on is installed."""
    java = java_executable(environ)
    if java is None:
        raise EngineError(
            f"the Spark engine needs Java {MIN_JAVA} or later and found none (no java on the PATH, or JAVA_HOME "
            "without bin/java): install a JRE (Debian: apt-get install default-jre-headless) or use --engine duckdb"
        )
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(f"cannot run {java} -version: {exc}") from None
    major = java_major(done.stderr + done.stdout)
    if major is None or major < MIN_JAVA:
        raise EngineError(f"the Spark engine needs Java {MIN_JAVA} or later; {java} is version {major or 'unknown'}")


class SparkEngine:
    """Splink's SparkAPI on a local session. ``timings`` holds the seconds spent starting the session and moving
    tables to and from it, apart from the phases linking times."""

    name = "spark"

    def __init__(self, settings: SparkSettings | None = None) -> None:
        self.settings = settings or SparkSettings()
        self.timings: dict[str, float] = {}
        self._work: Path | None = None
        self._gateway: Any = None
        self._spark: Any = None
        self._linkers = 0

    def __enter__(self) -> SparkEngine:
        check_java(os.environ)
        try:
            from pyspark import SparkConf, SparkContext
            from pyspark.java_gateway import launch_gateway
            from pyspark.sql import SparkSession
            from splink.backends.spark import similarity_jar_location
        except ImportError:
            raise EngineError(
                "the Spark engine needs pyspark: run `.venv/bin/pip install -e '.[spark]'` in the Cove checkout"
            ) from None
        if SparkContext._active_spark_context is not None:
            raise EngineError("a Spark session is already running in this process")
        self._work = Path(tempfile.mkdtemp(prefix="cove-spark-"))
        try:
            with self._timed("start"):
                for sub in ("local", "tmp", "checkpoints", "exchange"):
                    (self._work / sub).mkdir()
                (self._work / "log4j2.properties").write_text(_LOG4J)
                conf_items = spark_conf(self.settings, self._work, similarity_jar_location()).items()
                conf = SparkConf().setAll(list(conf_items))
                with open(self._work / "jvm.log", "ab") as log:
                    self._gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})
                context = SparkContext(gateway=self._gateway, conf=conf)
                context.setCheckpointDir(str(self._work / "checkpoints"))
                self._spark = SparkSession(context)
        except Exception as exc:
            message = _one_line(exc, self._work / "jvm.log")
            self._close()
            raise EngineError(f"Spark did not start: {message}") from exc
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        message = _one_line(exc, self._work / "jvm.log") if _is_spark_error(exc) and self._work else None
        self._close()
        if message is not None:
            raise EngineError(f"Spark failed: {message}") from exc

    def linker(self, mem: duckdb.DuckDBPyConnection, settings: SettingsCreator) -> Linker:
        from splink import Linker
        from splink.backends.spark import SparkAPI

        db_api = portable_api(SparkAPI, "spark")(
            spark_session=self.session,
            break_lineage_method="parquet",
            num_partitions_on_repartition=self.settings.partitions,
        )
        # Linking may build several linkers in one run (one to sample u, one to score): each gets a fresh copy
        # of the tables as they are now, under the dataset names Splink expects, which must be free.
        self._linkers += 1
        inputs = []
        with self._timed("to_spark"):
            for table, dataset in INPUTS:
                path = self.work_dir / "exchange" / f"{table}-{self._linkers}.parquet"
                mem.execute(f"COPY {table} TO {_sql_string(path)} (FORMAT parquet)")
                self.session.catalog.dropTempView(dataset)
                inputs.append(db_api.register(self.session.read.parquet(str(path)), table_name=dataset))
        return Linker(inputs, settings, log_level=logging.ERROR)

    def predict(self, mem: duckdb.DuckDBPyConnection, linker: Linker) -> str:
        predictions = linker.inference.predict(warning_mode="never").as_spark_dataframe()
        with self._timed("from_spark"):
            path = self.work_dir / "exchange" / "predictions"
            predictions.write.parquet(str(path))
            mem.execute(f"CREATE OR REPLACE TABLE {PREDICTIONS} AS SELECT * FROM read_parquet({_sql_string(path)})")
        return PREDICTIONS

    @property
    def session(self) -> Any:
        """The running SparkSession."""
        if self._spark is None:
            raise RuntimeError("SparkEngine is used outside its `with` block")
        return self._spark

    @property
    def work_dir(self) -> Path:
        """The temporary directory holding everything the session writes."""
        if self._work is None:
            raise RuntimeError("SparkEngine is used outside its `with` block")
        return self._work

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

    def _close(self) -> None:
        """Stop the session, end the JVM, remove the work directory: whatever of them was started."""
        from pyspark import SparkContext

        if self._spark is not None:
            self._spark.stop()
            self._spark = None
        if self._gateway is not None:
            self._gateway.shutdown()
            # The JVM exits when its stdin closes; pyspark keeps the gateway for reuse, which would also keep
            # this session's memory and cores for the next one.
            self._gateway.proc.stdin.close()
            try:
                self._gateway.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._gateway.proc.kill()
                self._gateway.proc.wait()
            SparkContext._gateway, SparkContext._jvm = None, None
            self._gateway = None
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None


def _sql_string(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _is_spark_error(exc: BaseException | None) -> bool:
    if exc is None:
        return False
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    return isinstance(exc, Py4JError | PySparkException)


def _one_line(exc: BaseException | None, log: Path) -> str:
    """The gist of a Spark failure: the exception's first telling line, else the JVM log's last error."""
    lines = [line.strip().lstrip(": ") for line in str(exc or "").splitlines()]
    telling = [line for line in lines if line and not line.startswith("An error occurred while calling")]
    if telling:
        return telling[0]
    try:
        errors = [line for line in log.read_text(errors="replace").splitlines() if " ERROR " in line]
    except OSError:
        errors = []
    return errors[-1].split(": ", 1)[-1] if errors else type(exc).__name__
