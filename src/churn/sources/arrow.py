"""A source from Arrow tables in memory: one customer bucket of a scaled-out build (Spark), read as the whole
data was read.

The tables hold the user's raw columns (as a Spark task receives them); how each is read (which column
feeds which contract column, the text layouts decided from the whole data's sample) comes from the frozen
layouts (`churn.frozen.TableLayout`), never from the bucket's own rows. A table the whole data has and the
bucket lacks is registered empty, so every bucket declares the same features.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from churn.config import Config
from churn.frozen import Frozen
from churn.sources.base import DataSource, TableInfo, connect


def open_tables(tables: Mapping[str, Any], frozen: Frozen, config: Config) -> DataSource:
    """A `DataSource` over Arrow tables (name -> pyarrow.Table) laid out as `frozen.tables` says; not yet
    validated or typed (`churn.validation.validate`, `churn.sources.register_typed`)."""
    import pyarrow as pa

    con = connect(config.engine, frozen.timezone)
    ds = DataSource(con=con, tables={}, timezone=frozen.timezone, label="a customer bucket")
    try:
        for name, lay in frozen.tables.items():
            table = tables.get(name)
            if table is None or table.num_rows == 0:
                table = pa.table({f.name: pa.array([], f.type) for f in lay.schema}, schema=lay.schema)
            con.register(f"arrow_{name}", table)
            raw = f"raw_{name}"
            con.execute(f"CREATE VIEW {raw} AS SELECT * FROM arrow_{name}")
            raw_types = {r[0]: r[1] for r in con.execute(f"DESCRIBE {raw}").fetchall()}
            # The path stays text (a URI is no local Path): it only names the table in messages.
            ds.tables[name] = TableInfo(name, lay.path, raw, dict(lay.mapping), raw_types,  # type: ignore[arg-type]
                                        list(lay.missing_required), 0, number_styles=dict(lay.number_styles),
                                        date_formats=dict(lay.date_formats), in_bucket=True)
    except BaseException:
        con.close()
        raise
    return ds
