"""Write the demo e-shop into a real MariaDB/MySQL database, as PrestaShop would hold it.

So the MySQL connector is exercised end to end: ``ps_customer``, ``ps_address``,
``ps_orders`` and ``ps_order_detail`` are dropped and recreated (idempotent), then filled
with batched ``executemany`` inserts of 10,000 rows; the view ``passerelle_customers``
joins each account to its delivery address. Identifiers are quoted with backticks after a
strict name check; values always travel as query parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pyarrow as pa

from passerelle.errors import ConnectorError

BATCH = 10_000
_NAME = re.compile(r"^[A-Za-z0-9_$]{1,64}$")

DDL = {
    "ps_customer": """(
  `id_customer` INT UNSIGNED NOT NULL,
  `id_gender` TINYINT UNSIGNED NOT NULL,
  `firstname` VARCHAR(255) NOT NULL,
  `lastname` VARCHAR(255) NOT NULL,
  `email` VARCHAR(255) NULL,
  `birthday` DATE NULL,
  `newsletter` TINYINT(1) NOT NULL DEFAULT 0,
  `optin` TINYINT(1) NOT NULL DEFAULT 0,
  `active` TINYINT(1) NOT NULL DEFAULT 1,
  `date_add` DATETIME NOT NULL,
  `date_upd` DATETIME NOT NULL,
  PRIMARY KEY (`id_customer`), KEY `date_upd` (`date_upd`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "ps_address": """(
  `id_address` INT UNSIGNED NOT NULL,
  `id_customer` INT UNSIGNED NOT NULL,
  `alias` VARCHAR(32) NOT NULL,
  `firstname` VARCHAR(255) NOT NULL,
  `lastname` VARCHAR(255) NOT NULL,
  `address1` VARCHAR(128) NOT NULL,
  `address2` VARCHAR(128) NULL,
  `postcode` VARCHAR(12) NULL,
  `city` VARCHAR(64) NOT NULL,
  `phone` VARCHAR(32) NULL,
  `phone_mobile` VARCHAR(32) NULL,
  `deleted` TINYINT(1) NOT NULL DEFAULT 0,
  `date_add` DATETIME NOT NULL,
  `date_upd` DATETIME NOT NULL,
  PRIMARY KEY (`id_address`), KEY `id_customer` (`id_customer`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "ps_orders": """(
  `id_order` INT UNSIGNED NOT NULL,
  `reference` VARCHAR(9) NOT NULL,
  `id_customer` INT UNSIGNED NOT NULL,
  `total_paid_tax_incl` DECIMAL(20,6) NOT NULL,
  `current_state` INT UNSIGNED NOT NULL,
  `date_add` DATETIME NOT NULL,
  `date_upd` DATETIME NOT NULL,
  PRIMARY KEY (`id_order`), KEY `id_customer` (`id_customer`), KEY `date_upd` (`date_upd`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "ps_order_detail": """(
  `id_order_detail` INT UNSIGNED NOT NULL,
  `id_order` INT UNSIGNED NOT NULL,
  `product_id` INT UNSIGNED NOT NULL,
  `product_name` VARCHAR(255) NOT NULL,
  `product_quantity` INT UNSIGNED NOT NULL,
  `unit_price_tax_incl` DECIMAL(20,6) NOT NULL,
  `total_price_tax_incl` DECIMAL(20,6) NOT NULL,
  `category_name` VARCHAR(128) NULL,
  PRIMARY KEY (`id_order_detail`), KEY `id_order` (`id_order`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
}


# What the e-shop's customer source reads: each account with its latest delivery address
# (PrestaShop keeps addresses apart, in ps_address). IT creates such a view for Passerelle;
# the demo's Parquet export runs the same query (outputs.customers_with_address).
CUSTOMERS_VIEW_NAME = "passerelle_customers"
CUSTOMERS_VIEW = """SELECT c.id_customer, c.id_gender, c.firstname, c.lastname, c.email,
  c.birthday, c.newsletter, c.optin, c.active, c.date_add,
  GREATEST(c.date_upd, COALESCE(a.date_upd, c.date_upd)) AS date_upd,
  a.address1, a.address2, a.postcode, a.city, a.phone, a.phone_mobile
FROM ps_customer c
LEFT JOIN ps_address a ON a.id_address = (
  SELECT MAX(x.id_address) FROM ps_address x WHERE x.id_customer = c.id_customer
  AND x.deleted = 0)"""


def _ident(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise ConnectorError(
            f"The MariaDB {what} name {name!r} is not a plain identifier.",
            "Use letters, digits and underscores only.",
        )
    return f"`{name}`"


def _rows(table: pa.Table) -> Iterator[list[tuple]]:
    for batch in table.to_batches(max_chunksize=BATCH):
        cols = [c.to_pylist() for c in batch.columns]
        yield list(zip(*cols, strict=True))


def write_eshop(conn: dict, tables: dict[str, pa.Table]) -> dict[str, int]:
    """Create the database if missing, replace the tables and the customers view; return
    the tables' row counts."""
    import pymysql

    database = _ident(str(conn.get("database", "")), "database")
    try:
        con = pymysql.connect(
            host=conn.get("host", "127.0.0.1"), port=int(conn.get("port", 3306)),
            user=conn.get("user", "root"), password=conn.get("password") or "",
            charset="utf8mb4", autocommit=False,
        )
    except pymysql.err.MySQLError as exc:
        raise ConnectorError(
            f"Cannot connect to MariaDB at {conn.get('host', '127.0.0.1')}:"
            f"{conn.get('port', 3306)}: {exc}",
            "Start the server or fix host, port, user and password.",
        ) from exc
    counts = {}
    try:
        with con.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {database} CHARACTER SET utf8mb4")
            cur.execute(f"USE {database}")
            for name, table in tables.items():
                quoted = _ident(name, "table")
                cur.execute(f"DROP TABLE IF EXISTS {quoted}")
                cur.execute(f"CREATE TABLE {quoted} {DDL[name]}")
                cols = ", ".join(_ident(c, "column") for c in table.column_names)
                marks = ", ".join(["%s"] * table.num_columns)
                sql = f"INSERT INTO {quoted} ({cols}) VALUES ({marks})"
                for rows in _rows(table):
                    cur.executemany(sql, rows)
                con.commit()
                counts[name] = table.num_rows
            view = _ident(CUSTOMERS_VIEW_NAME, "view")
            cur.execute(f"CREATE OR REPLACE VIEW {view} AS {CUSTOMERS_VIEW}")
            con.commit()
    except pymysql.err.MySQLError as exc:
        con.rollback()
        raise ConnectorError(f"Writing the demo e-shop to MariaDB failed: {exc}",
                             "Check the user may create databases and tables.") from exc
    finally:
        con.close()
    return counts
