"""Account linking on Spark: the same links as on DuckDB, and a clear refusal where Spark cannot run.

The comparison starts a real local Spark session (Java 17+, which .ci/run installs) on a small generated world.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import typer
from typer.testing import CliRunner

from cove.partner.analytics_cli import register
from cove.partner.engines import PORTABLE_HASH, EngineError, compare_links, open_engine
from cove.partner.linking import link
from cove.partner.population import WorldSpec, generate
from cove.partner.seed import seed_store
from cove.partner.spark import SparkEngine, SparkSettings, check_java, java_executable, java_major, spark_conf
from cove.partner.store import open_store

KEY = hashlib.sha256(b"test spark key").digest()
NOW_MS = 1_700_000_000_000
# Small data: a session sized for it starts faster, and few shuffle partitions mean few tasks per query.
SMALL = SparkSettings(cores=2, memory="1g", shuffle_partitions=2)


def _links(conn: duckdb.DuckDBPyConnection) -> pa.Table:
    return conn.sql("SELECT subject, user_id, probability, method FROM links").to_arrow_table()


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkEngine]:
    """One session for the module (a JVM start costs seconds); leaving it must end the JVM and leave no file."""
    with SparkEngine(SMALL) as engine:
        work, jvm = engine.work_dir, engine._gateway.proc
        yield engine
    assert not work.exists()
    assert jvm.poll() is not None
    with pytest.raises(RuntimeError, match="outside its `with` block"):
        _ = engine.session


# Each of Splink's ~120 small training queries is a Spark job of its own, so this test costs per-job overhead,
# not data: 156 to 333 s measured (plus 29 to 49 s to start the JVM) with other work keeping the load average at
# 7 to 12 on two cores. Hence the headroom.
@pytest.mark.timeout(1200)
def test_spark_gives_the_same_links_as_duckdb(spark: SparkEngine) -> None:
    # Plain numbers: every comparison runs, the Damerau-Levenshtein levels (on Spark a UDF from Splink's jar)
    # and the fuzzy phone blocks as well as the exact keys that hashed numbers use.
    world = generate(WorldSpec(users=2_000, mean_degree=0), seed=11)
    conn = open_store(":memory:")
    seed_store(conn, world, NOW_MS, mirror=True, phone_key=KEY, plain_phones=True)
    with open_engine("duckdb") as duck:
        on_duckdb = link(conn, KEY, NOW_MS, engine=duck)
    duckdb_links = _links(conn)
    on_spark = link(conn, KEY, NOW_MS, engine=spark)
    spark_links = _links(conn)

    assert duckdb_links.num_rows > 500 and on_duckdb.by_method.get("splink", 0) > 0  # fuzzy matches among them
    agreement = compare_links(duckdb_links, spark_links)
    # The same pairs sampled for u (the portable hash), the same EM blocks: the same model, so the same links;
    # the probabilities may differ only in the last bits of floating-point sums taken in another order.
    assert (agreement.only_first, agreement.only_second) == (0, 0)
    assert agreement.max_probability_gap < 1e-9
    assert duckdb_links.sort_by("subject")["method"] == spark_links.sort_by("subject")["method"]
    assert on_spark.scored_pairs == on_duckdb.scored_pairs
    assert [(q.links, q.correct) for q in on_spark.quality] == [(q.links, q.correct) for q in on_duckdb.quality]
    assert {"start", "to_spark", "from_spark"} <= set(spark.timings)


def test_the_portable_hash_is_one_number_in_duckdb_and_spark(spark: SparkEngine) -> None:
    ids = ["parent_-__-1", "messenger_-__-123456_1", "é"]
    in_duckdb = [duckdb.sql("SELECT " + PORTABLE_HASH["duckdb"].format(repr(i))).fetchall()[0][0] for i in ids]
    in_spark = [spark.session.sql("SELECT " + PORTABLE_HASH["spark"].format(repr(i))).collect()[0][0] for i in ids]
    assert in_duckdb == in_spark
    assert all(0 <= h < 2**60 for h in in_duckdb) and len(set(in_duckdb)) == len(ids)


def test_without_java_the_cli_says_so_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    where = ["--store", str(tmp_path / "partner.duckdb"), "--trust", str(tmp_path / "trust.json")]
    assert runner.invoke(app, ["seed", "--users", "200", "--mirror", *where]).exit_code == 0
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java here
    result = runner.invoke(app, ["link", "--engine", "spark", *where])
    assert result.exit_code == 1
    assert "needs Java 17 or later and found none" in result.output
    assert "Traceback" not in result.output and result.exception is not None  # typer's Exit, nothing else
    assert isinstance(result.exception, SystemExit)
    unknown = runner.invoke(app, ["link", "--engine", "hadoop", *where])
    assert unknown.exit_code == 2 and "hadoop" in unknown.output


def test_java_versions_are_read_in_both_styles() -> None:
    assert java_major('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment') == 17
    assert java_major('openjdk version "21" 2023-09-19') == 21
    assert java_major('java version "1.8.0_392"') == 8
    assert java_major("no version here") is None


def test_java_is_found_as_sparks_launcher_finds_it(tmp_path: Path) -> None:
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\"' >&2\n")
    java.chmod(0o755)
    assert java_executable({"JAVA_HOME": str(tmp_path / "jdk"), "PATH": ""}) == str(java)
    assert java_executable({"JAVA_HOME": str(tmp_path / "nothing"), "PATH": str(java.parent)}) is None
    assert java_executable({"PATH": str(java.parent)}) == str(java)
    with pytest.raises(EngineError, match="needs Java 17 or later; .* is version 11"):
        check_java({"JAVA_HOME": str(tmp_path / "jdk")})


def test_settings_are_checked_and_keep_every_path_in_the_work_directory(tmp_path: Path) -> None:
    for bad in ({"cores": 0}, {"memory": "4 GB; rm -rf /"}, {"memory": "0g"}, {"shuffle_partitions": 0}):
        with pytest.raises(EngineError):
            SparkSettings(**bad)
    conf = spark_conf(SparkSettings(cores=3, memory="2g"), tmp_path, "/opt/udfs.jar")
    assert conf["spark.master"] == "local[3]" and conf["spark.driver.memory"] == "2g"
    assert conf["spark.sql.shuffle.partitions"] == "12" and conf["spark.jars"] == "/opt/udfs.jar"
    assert conf["spark.driver.bindAddress"] == "127.0.0.1" and conf["spark.ui.enabled"] == "false"
    for name in ("spark.local.dir", "spark.sql.warehouse.dir"):
        assert Path(conf[name]).is_relative_to(tmp_path)
    assert f"-Djava.io.tmpdir={tmp_path}" in conf["spark.driver.extraJavaOptions"]


def test_agreement_counts_pairs_on_one_side_only_and_the_largest_gap() -> None:
    first = pa.table({"subject": ["a", "b", "c"], "user_id": [1, 2, 3], "probability": [0.95, 0.99, 0.91]})
    second = pa.table({"subject": ["a", "b", "d"], "user_id": [1, 5, 4], "probability": [0.96, 0.99, 0.92]})
    agreement = compare_links(first, second)
    assert (agreement.both, agreement.only_first, agreement.only_second) == (1, 2, 2)
    assert agreement.max_probability_gap == pytest.approx(0.01)
    assert agreement.share_identical == pytest.approx(1 / 5)
    assert compare_links(first, first).share_identical == 1.0


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(EngineError, match="unknown linking engine 'hadoop'"), open_engine("hadoop"):
        pass
