#!/usr/bin/env python3
"""Delivery variants of a differential workload (test/run.d/schema_variants.sh).

An application does not only write chats with multi-row INSERTs inside
BEGIN ... COMMIT. This rewrites a workload of test/differential/generator.sql
(stdin -> stdout) so that the same changes arrive another way; both databases
under comparison get the same rewritten script.

  copy           every chat INSERT run as the owner becomes COPY "VC Usage"
                 (...) FROM STDIN (text format, its rows inline); as crm_app it
                 stays an INSERT (PostgreSQL refuses COPY FROM under
                 row-level security)
  savepoints     every data statement runs first inside a savepoint that is
                 rolled back (alternately SAVEPOINT / ROLLBACK TO in SQL and a
                 PL/pgSQL block whose exception handler undoes it), then again
                 for real: whatever the triggers keep per transaction must
                 forget what a rolled-back subtransaction did
  procedures     runs of up to 25 consecutive steps are executed by one CALL of
                 difftest.run_steps() (test/differential/harness.sql), which
                 EXECUTEs each step and COMMITs after it: a procedure that
                 commits, its later transactions reusing the backend's state
  function_loop  every chat INSERT becomes a PL/pgSQL loop over a cursor of
                 its rows that inserts them one statement at a time
  multi_change   every chat INSERT, UPDATE and DELETE run as the owner goes
                 in a writable CTE beside two more: one deletes the newest
                 chat of a live, unmerged customer, one inserts it again. One
                 query that changes "VC Usage" three times, whose statement
                 triggers all fire after all of it (an upsert or MERGE is
                 such a query too)
  partition_writes  (on schema variant partitioned) every chat INSERT, UPDATE
                 and DELETE run as the owner names the partitions of "VC Usage"
                 instead (crm_parts.vc_usage_early, public.vc_usage_later,
                 test/differential/variants.sql): an INSERT's rows go to the
                 partition their created_at falls in, an UPDATE or DELETE runs
                 once on each partition. A statement fires the statement
                 triggers of the table it names only

The generator writes one statement per line (see generator.sql); a step is
the lines from BEGIN; to COMMIT;. Values are SQL literals: NULL, integers or
'...' strings with '' for a quote.
"""
import datetime
import re
import sys

CHAT_INSERT = re.compile(r'^INSERT INTO "VC Usage" \(([^)]*)\) VALUES (.*);$')
DATA = re.compile(r'^(RESET ROLE; )?(INSERT|UPDATE|DELETE) ')
CHAT_CHANGE = re.compile(r'^(RESET ROLE; )?(UPDATE|DELETE FROM) "VC Usage" (.*)$')
# The partitions of "VC Usage" in schema variant partitioned, and the bound
# between them.
EARLY, LATER = "crm_parts.vc_usage_early", "public.vc_usage_later"
BOUND = datetime.datetime(2024, 1, 1, 2, 0, tzinfo=datetime.timezone.utc)

# The chat columns' types, for the casts of function_loop (others: text).
TYPES = {"company_id": "uuid", "user_id": "uuid", "customer_id": "uuid", "interaction_number": "int4",
         "view_count": "int4", "created_at": "timestamptz"}


def parse_rows(values):
    """'(a, 'b', NULL), (...)' -> [[value, ...], ...]; a value is None (NULL),
    an int literal as str, or ('s', text) for a string."""
    rows, row, i, n = [], None, 0, len(values)
    while i < n:
        c = values[i]
        if c == "(":
            row = []
            i += 1
        elif c == ")":
            rows.append(row)
            row = None
            i += 1
        elif c in ", ":
            i += 1
        elif c == "'":
            j, text = i + 1, []
            while True:
                k = values.index("'", j)
                text.append(values[j:k])
                if k + 1 < n and values[k + 1] == "'":
                    text.append("'")
                    j = k + 2
                else:
                    i = k + 1
                    break
            row.append(("s", "".join(text)))
        else:
            m = re.match(r"NULL|-?[0-9]+", values[i:])
            if not m or row is None:
                raise SystemExit("delivery.py: cannot parse VALUES near: " + values[i:i + 40])
            row.append(None if m.group(0) == "NULL" else m.group(0))
            i += m.end()
    return rows


def copy_field(v):
    if v is None:
        return "\\N"
    if isinstance(v, tuple):
        v = v[1]
    return v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def sql_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, tuple):
        return "'" + v[1].replace("'", "''") + "'"
    return v


def chat_copy(cols, rows):
    out = ['COPY "VC Usage" (%s) FROM STDIN;' % cols]
    out += ["\t".join(copy_field(v) for v in row) for row in rows]
    out.append("\\.")
    return out


def chat_loop(cols, rows):
    names = [c.strip() for c in cols.split(",")]
    values = ", ".join("(" + ", ".join(sql_literal(v) for v in row) + ")" for row in rows)
    casts = ", ".join("r.%s::%s" % (c, TYPES.get(c, "text")) for c in names)
    return ["DO $chats$ DECLARE r record; BEGIN FOR r IN SELECT * FROM (VALUES %s) v (%s) LOOP "
            "INSERT INTO \"VC Usage\" (%s) VALUES (%s); END LOOP; END $chats$;" % (values, cols, cols, casts)]


def is_early(row, at):
    """Whether the row's created_at (a timestamptz literal with its offset)
    falls in the early partition; a row without one gets now(): later."""
    if at is None or not isinstance(row[at], tuple):
        return False
    created = datetime.datetime.fromisoformat(row[at][1])
    if created.tzinfo is None:
        raise SystemExit("delivery.py: created_at without a time zone: " + row[at][1])
    return created < BOUND


def partition_insert(cols, rows):
    names = [c.strip() for c in cols.split(",")]
    at = names.index("created_at") if "created_at" in names else None
    early = [r for r in rows if is_early(r, at)]
    later = [r for r in rows if not is_early(r, at)]
    return ["INSERT INTO %s (%s) VALUES %s;" % (table, cols, ", ".join(
                "(" + ", ".join(sql_literal(v) for v in row) + ")" for row in part))
            for table, part in ((EARLY, early), (LATER, later)) if part]


CHAT_COLUMNS = ("company_id, user_id, customer_id, customer_name, customer_email, customer_phone, session_id,"
                " interaction_number, user_message, ai_response, view_count, created_at")


def multi_change(line):
    # the sibling deletes the newest chat of a live, unmerged customer and
    # inserts it again (a new id): the customer's metrics end as they were,
    # through a DELETE and an INSERT trigger of the same query
    return ["WITH delivery_main AS (%s RETURNING 1),"
            " delivery_gone AS (DELETE FROM \"VC Usage\" WHERE user_message = (SELECT max(v.user_message)"
            " FROM \"VC Usage\" v JOIN customers c ON c.id = v.customer_id"
            " WHERE c.deleted_at IS NULL AND c.merged_into_customer_id IS NULL) RETURNING *),"
            " delivery_back AS (INSERT INTO \"VC Usage\" (%s) SELECT %s FROM delivery_gone RETURNING 1)"
            " SELECT count(*) FROM delivery_main;" % (line[:-1], CHAT_COLUMNS, CHAT_COLUMNS)]


def savepoint_twice(line, k):
    if k % 2 == 0 or ";" in line[:-1]:
        return ["SAVEPOINT delivery_try;", line, "ROLLBACK TO SAVEPOINT delivery_try;", line,
                "RELEASE SAVEPOINT delivery_try;"]
    return ["DO $try$ BEGIN %s RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'delivery: undo';"
            " EXCEPTION WHEN raise_exception THEN NULL; END $try$;" % line, line]


def steps(lines):
    """Splits into (head, [step lines...]) where each step is BEGIN; ... COMMIT;."""
    head, out, cur = [], [], None
    for line in lines:
        if line == "BEGIN;":
            cur = [line]
        elif cur is not None:
            cur.append(line)
            if line == "COMMIT;":
                out.append(cur)
                cur = None
        elif not out:
            head.append(line)
        else:
            raise SystemExit("delivery.py: a line outside a step: " + line)
    if cur is not None:
        raise SystemExit("delivery.py: the last step has no COMMIT")
    return head, out


def main():
    modes = ("copy", "savepoints", "procedures", "function_loop", "partition_writes", "multi_change")
    if len(sys.argv) != 2 or sys.argv[1] not in modes:
        raise SystemExit("usage: delivery.py %s < workload.sql" % "|".join(modes))
    mode = sys.argv[1]
    head, all_steps = steps(sys.stdin.read().splitlines())
    out = list(head)
    if mode == "procedures":
        for i in range(0, len(all_steps), 25):
            group = all_steps[i:i + 25]
            # each step without its BEGIN; / COMMIT; as one dollar-quoted text
            texts = ["$step$" + "\n".join(s[1:-1]) + "$step$" for s in group]
            if any("$step$" in "\n".join(s) for s in group):
                raise SystemExit("delivery.py: a step contains $step$")
            out.append("CALL difftest.run_steps(ARRAY[%s]);" % ",\n".join(texts))
    else:
        k = 0
        for step in all_steps:
            as_app = False
            for line in step:
                if line.startswith("SET LOCAL ROLE crm_app;"):
                    as_app = True
                elif line.startswith("RESET ROLE;"):
                    as_app = False
                m = CHAT_INSERT.match(line)
                change = CHAT_CHANGE.match(line)
                if mode == "partition_writes" and not as_app and (m or change):
                    if m:
                        out += partition_insert(m.group(1), parse_rows(m.group(2)))
                    else:
                        prefix = change.group(1) or ""
                        out += ["%s%s %s %s" % (prefix, change.group(2), table, change.group(3))
                                for table in (EARLY, LATER)]
                elif mode == "multi_change" and not as_app and (m or (change and not change.group(1))):
                    out += multi_change(line)
                elif m and mode == "copy" and not as_app:
                    out += chat_copy(m.group(1), parse_rows(m.group(2)))
                elif m and mode == "function_loop":
                    out += chat_loop(m.group(1), parse_rows(m.group(2)))
                elif mode == "savepoints" and DATA.match(line):
                    out += savepoint_twice(line, k)
                    k += 1
                else:
                    out.append(line)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
