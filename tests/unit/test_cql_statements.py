"""Every CQL statement of the Cassandra adapter names only tables and columns that
schema/cql creates, checked without a cluster.

The schema is rebuilt by applying the migrations' CREATE TABLE and ALTER TABLE ADD / DROP
in version order; each statement of ``instastore.storage.cassandra.statements`` is then
read word by word: its table (after FROM, INTO or UPDATE) must exist, and every other
lower-case word that is not a function, an alias or a literal must be one of that
table's columns. Upper-case words are CQL keywords and must be known ones, so a keyword
typed in lower case is read as a column and fails too."""

from __future__ import annotations

import re

import pytest
from instastore.schema import migrations

from instastore.storage.cassandra import statements

Schema = dict[str, set[str]]

KEYWORDS = {
    "AND", "AS", "BY", "COUNT", "DELETE", "DESC", "ASC", "EXISTS", "FROM", "GROUP", "IF",
    "IN", "INSERT", "INTO", "LIMIT", "NOT", "ORDER", "SELECT", "SET", "TIMESTAMP", "TTL",
    "UPDATE", "USING", "VALUES", "WHERE", "ALLOW", "FILTERING",
}  # fmt: skip
LITERALS = {"null", "true", "false"}
# Cassandra's own tables that the adapter reads (never made by schema/cql).
SYSTEM_TABLES: Schema = {"system.local": {"release_version"}}
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?|\?|\d+|\S")
_CREATE = re.compile(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)\s*\(", re.IGNORECASE)
_ALTER_ADD = re.compile(r"ALTER TABLE (\w+) ADD (?:IF NOT EXISTS )?(\w+) \w+", re.IGNORECASE)
_ALTER_DROP = re.compile(r"ALTER TABLE (\w+) DROP (?:IF EXISTS )?(\w+)$", re.IGNORECASE)
_DROP = re.compile(r"DROP TABLE (?:IF EXISTS )?(\w+)$", re.IGNORECASE)


def _columns_of_create(ddl: str, start: int) -> set[str]:
    """The column names between the parenthesis at ``start`` and its match."""
    depth, parts, part = 0, [], ""
    for char in ddl[start:]:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            break
        if char == "," and depth == 1:
            parts.append(part)
            part = ""
        else:
            part += char
    parts.append(part)
    definitions = [p.strip("( \n") for p in parts]
    return {d.split()[0] for d in definitions if not d.upper().startswith("PRIMARY KEY")}


def apply(schema: Schema, ddl: str) -> None:
    """Apply one schema statement; a kind this test cannot read fails it, so that a new
    kind of migration is taught here rather than silently ignored."""
    ddl = " ".join(ddl.split())
    if match := _CREATE.match(ddl):
        schema.setdefault(match.group(1), set()).update(_columns_of_create(ddl, match.end() - 1))
    elif match := _ALTER_ADD.match(ddl):
        schema[match.group(1)].add(match.group(2))
    elif match := _ALTER_DROP.match(ddl):
        schema[match.group(1)].discard(match.group(2))
    elif match := _DROP.match(ddl):
        del schema[match.group(1)]
    else:
        raise AssertionError(f"a schema statement this test does not read: {ddl[:80]}")


def schema_after(versions: int | None = None) -> Schema:
    """Tables and their columns once the first ``versions`` migrations (all: None) ran."""
    schema: Schema = {}
    for migration in migrations("cql")[:versions]:
        for ddl in migration.statements():
            apply(schema, ddl)
    return schema


def problems(cql: str, schema: Schema) -> list[str]:
    """What in ``cql`` the schema does not have: its table, or each column it names."""
    tokens = _TOKEN.findall(cql)
    verb = tokens[0].upper()
    after = {"SELECT": "FROM", "DELETE": "FROM", "INSERT": "INTO", "UPDATE": "UPDATE"}
    if verb not in after or after[verb] not in tokens:
        return [f"not a statement this test reads: {cql[:60]}"]
    at = tokens.index(after[verb]) + 1
    table = tokens[at]
    known = {**schema, **SYSTEM_TABLES}
    if table not in known:
        return [f"no table {table}"]
    found = []
    for i, token in enumerate(tokens):
        if i == at or (not token[0].isalpha() and token[0] != "_"):
            continue
        if token.isupper():
            if token not in KEYWORDS:
                found.append(f"unknown keyword {token}")
        elif token in LITERALS or tokens[i - 1] == "AS":
            continue
        elif i + 1 < len(tokens) and tokens[i + 1] == "(":
            continue  # a function: token(...)
        elif token not in known[table]:
            found.append(f"{table} has no column {token}")
    return found


EVERY = {**statements.statements(), "ping": statements.PING}


def test_the_migrations_make_the_tables_the_schema_files_describe():
    schema = schema_after()
    assert schema["photos"] == {"photo_id", "record", "deleted_at"}
    assert schema["user_photos"] == {"user_id", "bucket", "photo_id"}
    # 003 adds two columns by ALTER TABLE: known only once it is applied, in order.
    assert schema["idempotency_keys"] == {"user_id", "key", "photo_id", "claimed_at", "intent"}
    assert "intent" not in schema_after(versions=2)["idempotency_keys"]


@pytest.mark.parametrize("name", sorted(EVERY))
def test_every_statement_names_only_tables_and_columns_of_the_schema(name):
    assert problems(EVERY[name], schema_after()) == []


@pytest.mark.parametrize("name", sorted(EVERY))
def test_every_statement_is_prepared_with_its_table_in_the_keyspace(name):
    """``statements.qualified``: the statement reads the same, with its table (and only
    that) in the keyspace; a table named in a keyspace already stays as it is."""
    in_keyspace = {f"ks.{table}": columns for table, columns in schema_after().items()}
    done = statements.qualified(EVERY[name], "ks")
    assert problems(done, in_keyspace) == []
    assert done.count("ks.") == (0 if name == "ping" else 1), done
    assert statements.qualified(done, "ks") == done


@pytest.mark.parametrize(
    ("cql", "expected"),
    [
        ("SELECT record, deleted_att FROM photos WHERE photo_id = ?", "no column deleted_att"),
        ("SELECT record FROM photos WHERE photoid = ?", "no column photoid"),
        ("INSERT INTO likes (photo_id, user_id, create_at) VALUES (?, ?, ?)", "no column create"),
        ("UPDATE like_counts SET likes = like + ? WHERE photo_id = ?", "no column like"),
        ("DELETE FROM likes WHERE photo_id = ? IF user = ?", "no column user"),
        ("SELECT photo_id FROM user_photo WHERE user_id = ?", "no table user_photo"),
        ("SELECT photo_id FROM photos where photo_id = ?", "no column where"),
        ("SELECT photo_id FROM photos WHERE photo_id = ? LIMT ?", "unknown keyword LIMT"),
        # intent exists on idempotency_keys only, from migration 003 on.
        ("UPDATE users SET intent = ? WHERE user_id = ?", "users has no column intent"),
    ],
)
def test_a_misspelled_table_column_or_keyword_is_caught(cql, expected):
    found = problems(cql, schema_after())
    assert len(found) == 1 and expected in found[0], found


def test_any_column_of_any_statement_misspelled_is_caught():
    """Each column of each real statement, misspelled in turn (its table, too)."""
    schema = schema_after()
    checked = 0
    for cql in statements.statements().values():
        for word in set(re.findall(r"\b[a-z_]+\b", cql)) - LITERALS - {"token", "t", "hidden"}:
            wrong = re.sub(rf"\b{word}\b", f"{word}x", cql)
            assert problems(wrong, schema), wrong
            checked += 1
    assert checked > 100


# Statements that filter, each inside partitions its key names whole (never a scan of
# the table): a new one is reviewed here.
FILTERING_INSIDE_PARTITIONS = {"comments_by_among": "WHERE photo_id = ? AND bucket IN ?"}


def test_only_reviewed_statements_filter_and_only_inside_partitions():
    filtering = {n: q for n, q in EVERY.items() if "ALLOW FILTERING" in q.upper()}
    assert set(filtering) == set(FILTERING_INSIDE_PARTITIONS)
    for name, where in FILTERING_INSIDE_PARTITIONS.items():
        assert where in filtering[name]
