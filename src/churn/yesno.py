"""The words exports use for yes, no and "no value", written once: the data-source loader (consent and
complaint flags in SQL), the fitted preparation (yes/no feature columns, blanks) and the consent rule all
read these. Compared after stripping and lower-casing."""

from __future__ import annotations

TRUE_WORDS = frozenset({"1", "1.0", "true", "yes", "y", "t"})
FALSE_WORDS = frozenset({"0", "0.0", "false", "no", "n", "f"})
NA_WORDS = frozenset({"", "na", "n/a", "nan", "null", "none", "-", "?"})
