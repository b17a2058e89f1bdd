"""Splink's Spark backend on the Spark engine's session.

Passerelle writes Splink's comparison levels once, in the SQL that DuckDB and PostgreSQL
share: identifiers in double quotes, ``jaro_winkler_similarity``. Spark SQL reads double
quotes as strings and names the Jaro-Winkler function of Splink's jar ``jaro_winkler``. So
Splink runs here with a dialect that is Spark's but for those two points, and the model file
stays the same on every engine.
"""

from __future__ import annotations

from typing import Any, ClassVar

import sqlglot
import sqlglot.expressions as sge
from splink.backends.spark import SparkAPI
from splink.internals.dialects import SparkDialect, SplinkDialect
from splink.internals.spark.spark_helpers.custom_spark_dialect import CustomSpark

DIALECT = "passerelle_spark"


class PasserelleSpark(CustomSpark):  # type: ignore[misc]
    """Splink's Spark dialect, reading ``"name"`` as an identifier (as DuckDB, PostgreSQL
    and the SQL standard do) rather than a string."""

    class Tokenizer(CustomSpark.Tokenizer):  # type: ignore[misc]
        QUOTES: ClassVar = ["'"]
        IDENTIFIERS: ClassVar = ["`", '"']

    class Parser(CustomSpark.Parser):  # type: ignore[misc]
        FUNCTIONS: ClassVar = {**CustomSpark.Parser.FUNCTIONS,
                     "JARO_WINKLER_SIMILARITY": lambda args: sge.Anonymous(
                         this="jaro_winkler", expressions=args)}


sqlglot.Dialect.classes[DIALECT] = PasserelleSpark


class _Dialect(SparkDialect, SplinkDialect):
    _dialect_name_for_factory = DIALECT

    @property
    def sql_dialect_str(self) -> str:
        return DIALECT

    @property
    def sqlglot_dialect(self) -> str:
        return DIALECT


class PasserelleSparkAPI(SparkAPI):
    sql_dialect = _Dialect()

    def _setup_for_execute_sql(self, sql: str, physical_name: str) -> str:
        tree = sqlglot.parse_one(sql, read=DIALECT).transform(_date_difference)
        return tree.sql(dialect=DIALECT, pretty=True)


def _date_difference(node: sge.Expression) -> sge.Expression:
    """``date_l - date_r`` is a number of days on DuckDB and PostgreSQL, an interval on
    Spark: a date comparison's ``abs(x_l - x_r) <= 365`` becomes ``abs(datediff(...))``."""
    if isinstance(node, sge.Sub) and isinstance(node.this, sge.Column) \
            and isinstance(node.expression, sge.Column):
        left, right = node.this.name, node.expression.name
        if left.endswith("_l") and right.endswith("_r") and left[:-2] == right[:-2] \
                and "date" in left:
            return sge.Anonymous(this="datediff", expressions=[node.this, node.expression])
    return node


def spark_api(session: Any, *, break_lineage: str, partitions: int, database: str) -> Any:
    return PasserelleSparkAPI(spark_session=session, break_lineage_method=break_lineage,
                              num_partitions_on_repartition=max(1, partitions),
                              database=database)
