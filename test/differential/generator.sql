-- Differential workload generator (docs/differential.md).
--
-- difftest.generate(seed, steps) returns a psql script: `steps` transactions,
-- each recording its now() in difftest.clock and then running one to three
-- operations of the CRM application. The script depends only on the seed,
-- never on the database it runs in: chats are referred to by their
-- user_message ('m<n>', unique), customers by the chat they are linked to,
-- so the same script runs against every database under comparison.
--
-- Values stay in the domain where plpgsql and native normalization agree:
-- ASCII names (case and extra spaces vary), plain ASCII emails (case and
-- surrounding spaces vary), E.164 phones '+1 NPA NXX XXXX' (separators vary).
SET client_min_messages = warning;

CREATE FUNCTION difftest.person_name(p int, variant int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    WITH n AS (
        SELECT (ARRAY['Ann','Bob','Carla','Dmitri','Eve','Farid','Grace','Hiro','Ines','Jon','Kofi','Lena',
                      'Mateo','Nora','Omar','Pia','Quinn'])[1 + (p - 1) % 17]
               || ' ' ||
               (ARRAY['Lee','Smith','Okafor','Novak','Garcia','Chen','Haddad'])[1 + ((p - 1) / 5) % 7] AS name)
    SELECT CASE variant WHEN 0 THEN name WHEN 1 THEN upper(name) WHEN 2 THEN lower(name)
                        ELSE '  ' || replace(name, ' ', '   ') || ' ' END
      FROM n
$$;

-- Persons 1..40 in both tenants (overlapping emails); 35..40 reuse the
-- email of 1..6 under another name (a shared mailbox).
CREATE FUNCTION difftest.person_email(p int, variant int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    WITH e AS (SELECT 'person' || (CASE WHEN p > 34 THEN p - 34 ELSE p END) || '.mail@Example.com' AS email)
    SELECT CASE variant WHEN 0 THEN email WHEN 1 THEN upper(email) WHEN 2 THEN lower(email)
                        ELSE ' ' || lower(email) || '  ' END
      FROM e
$$;

-- Persons 31..40 share the phone of 1..10 (a family line).
CREATE FUNCTION difftest.person_phone(p int, variant int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    WITH d AS (SELECT lpad((CASE WHEN p > 30 THEN p - 30 ELSE p END)::text, 4, '0') AS line)
    SELECT CASE variant WHEN 0 THEN '+1212555' || line WHEN 1 THEN '+1 212-555-' || line
                        WHEN 2 THEN '+1 (212) 555 ' || line ELSE '+1.212.555.' || line END
      FROM d
$$;

-- p_app_only (schema variant "crm_app_rls", test/run.d/schema_variants.sh):
-- every step runs as crm_app under row-level security, in the one company it
-- writes to; the hard delete then runs as crm_app too, guarded by
-- schema_variant.has_merge_sources() (test/differential/variants.sql), since
-- crm_app cannot see the soft-deleted customers merged into the one it
-- deletes. With p_app_only false the script is the same as before the flag.
CREATE FUNCTION difftest.generate(p_seed int, p_steps int, p_app_only boolean DEFAULT false)
    RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    companies   text[] := ARRAY['aaaaaaaa-0000-4000-8000-00000000000a', 'bbbbbbbb-0000-4000-8000-00000000000b'];
    users       text[] := ARRAY['aaaaaaaa-0000-4000-8000-0000000000a1', 'bbbbbbbb-0000-4000-8000-0000000000b1'];
    stages      text[] := ARRAY['prospect', 'lead', 'customer', 'churned'];
    chat_person int[] := '{}';     -- chat n -> person
    chats_a     int[] := '{}';
    chats_b     int[] := '{}';
    n_chats     int := 0;
    c           int;
    as_app      boolean;
    n_ops       int;
    op          float8;
    r           float8;
    p           int;
    j           int;
    k           int;
    rows        text[];
    sql         text;
BEGIN
    PERFORM setseed((p_seed % 2147483647) / 2147483647.0);
    RETURN NEXT format('-- differential workload: seed %s, %s steps', p_seed, p_steps);
    RETURN NEXT '\set ON_ERROR_STOP 1';
    RETURN NEXT 'SET client_min_messages = warning;';
    RETURN NEXT 'SET TimeZone = ''UTC'';';
    FOR step IN 1 .. p_steps LOOP
        c := 1 + (random() < 0.5)::int;
        as_app := random() < 0.4 OR p_app_only;   -- the same random() calls either way
        RETURN NEXT 'BEGIN;';
        RETURN NEXT format('INSERT INTO difftest.clock VALUES (%s, now());', step);
        IF random() < 0.3 THEN
            RETURN NEXT format('SET LOCAL app.current_user_id = %L;', users[c]);
        END IF;
        n_ops := CASE WHEN random() < 0.7 THEN 1 WHEN random() < 0.6 THEN 2 ELSE 3 END;
        FOR i IN 1 .. n_ops LOOP
            op := random();
            IF as_app THEN
                RETURN NEXT format('SET LOCAL ROLE crm_app; SET LOCAL app.current_company_id = %L;', companies[c]);
            ELSE
                RETURN NEXT 'RESET ROLE;';
            END IF;
            -- operations that need an existing chat of the company fall back
            -- to a single chat insert while there is none
            IF op >= 0.45 AND cardinality(CASE c WHEN 1 THEN chats_a ELSE chats_b END) < 2 THEN
                op := 0.0;
            END IF;
            IF op >= 0.45 THEN
                j := (CASE c WHEN 1 THEN chats_a ELSE chats_b END)
                     [1 + floor(random() * cardinality(CASE c WHEN 1 THEN chats_a ELSE chats_b END))::int];
                k := (CASE c WHEN 1 THEN chats_a ELSE chats_b END)
                     [1 + floor(random() * cardinality(CASE c WHEN 1 THEN chats_a ELSE chats_b END))::int];
            END IF;

            IF op < 0.45 THEN
                -- chats: one by one (60%) or in bulk (2..15 rows in one INSERT)
                rows := '{}';
                FOR m IN 1 .. CASE WHEN random() < 0.6 THEN 1 ELSE 2 + floor(random() * 14)::int END LOOP
                    n_chats := n_chats + 1;
                    p := 1 + floor(random() * 40)::int;
                    chat_person := chat_person || p;
                    IF c = 1 THEN chats_a := chats_a || n_chats; ELSE chats_b := chats_b || n_chats; END IF;
                    r := random();
                    rows := rows || format('(%L, %s, %s, %s, %s, %L, %s, %L, %L, %s, %L)',
                        companies[c],
                        CASE WHEN random() < 0.5 THEN quote_literal(users[c]) ELSE 'NULL' END,
                        CASE WHEN r < 0.5 OR (r >= 0.7 AND r < 0.9) THEN quote_literal(difftest.person_name(p, floor(random() * 4)::int))
                             WHEN r >= 0.97 THEN quote_literal('   ') ELSE 'NULL' END,
                        CASE WHEN r < 0.3 OR (r >= 0.5 AND r < 0.7) THEN quote_literal(difftest.person_email(p, floor(random() * 4)::int))
                             WHEN r >= 0.97 THEN quote_literal('') ELSE 'NULL' END,
                        CASE WHEN r < 0.5 OR (r >= 0.9 AND r < 0.95) THEN quote_literal(difftest.person_phone(p, floor(random() * 4)::int))
                             ELSE 'NULL' END,
                        format('S%s_%s_%s', c, p, 1 + floor(random() * 2)::int),
                        1 + floor(random() * 5)::int,
                        'm' || n_chats, 'r' || n_chats,
                        CASE WHEN random() < 0.1 THEN 'NULL' ELSE (floor(random() * 6)::int)::text END,
                        (timestamptz '2024-01-01 00:00:00+00' + n_chats * interval '37 seconds')::text);
                END LOOP;
                RETURN NEXT 'INSERT INTO "VC Usage" (company_id, user_id, customer_name, customer_email, customer_phone, '
                            'session_id, interaction_number, user_message, ai_response, view_count, created_at) VALUES '
                            || array_to_string(rows, ', ') || ';';
            ELSIF op < 0.53 THEN
                -- a chat row gets a contact detail (its person's, sometimes another's)
                p := CASE WHEN random() < 0.8 THEN chat_person[j] ELSE 1 + floor(random() * 40)::int END;
                IF random() < 0.5 THEN
                    RETURN NEXT format('UPDATE "VC Usage" SET customer_email = %L WHERE user_message = %L;',
                                       difftest.person_email(p, floor(random() * 4)::int), 'm' || j);
                ELSE
                    RETURN NEXT format('UPDATE "VC Usage" SET customer_phone = %L, customer_name = customer_name WHERE user_message = %L;',
                                       difftest.person_phone(p, floor(random() * 4)::int), 'm' || j);
                END IF;
            ELSIF op < 0.58 THEN
                -- the application adds a contact detail to the customer itself
                p := chat_person[j];
                IF random() < 0.5 THEN
                    RETURN NEXT format('UPDATE customers SET customer_phone = coalesce(customer_phone, %L) '
                                       'WHERE id = (SELECT customer_id FROM "VC Usage" WHERE user_message = %L);',
                                       difftest.person_phone(p, 0), 'm' || j);
                ELSE
                    RETURN NEXT format('UPDATE customers SET customer_email = %L, customer_address = %L '
                                       'WHERE id = (SELECT customer_id FROM "VC Usage" WHERE user_message = %L);',
                                       difftest.person_email(p + 1, 2), p || ' Main St', 'm' || j);
                END IF;
            ELSIF op < 0.65 THEN
                RETURN NEXT format('UPDATE customers SET lifecycle_stage = %L '
                                   'WHERE id = (SELECT customer_id FROM "VC Usage" WHERE user_message = %L);',
                                   stages[1 + floor(random() * 4)::int], 'm' || j);
            ELSIF op < 0.67 THEN
                -- bulk lifecycle change
                RETURN NEXT format('UPDATE customers SET lifecycle_stage = %L WHERE company_id = %L AND customer_name ILIKE %L;',
                                   stages[1 + floor(random() * 4)::int], companies[c],
                                   (ARRAY['a%', 'b%', 'c%', '%lee%', '%smith%'])[1 + floor(random() * 5)::int]);
            ELSIF op < 0.73 THEN
                -- no-op updates
                r := random();
                IF r < 0.3 THEN
                    RETURN NEXT format('UPDATE customers SET status = status, tags = tags '
                                       'WHERE id = (SELECT customer_id FROM "VC Usage" WHERE user_message = %L);', 'm' || j);
                ELSIF r < 0.5 THEN
                    RETURN NEXT format('UPDATE customers SET lifecycle_stage = lifecycle_stage, metadata = metadata WHERE company_id = %L;',
                                       companies[c]);
                ELSIF r < 0.8 THEN
                    RETURN NEXT format('UPDATE "VC Usage" SET customer_name = customer_name, customer_email = customer_email '
                                       'WHERE user_message = %L;', 'm' || j);
                ELSE
                    RETURN NEXT format('UPDATE customers SET customer_name = customer_name '
                                       'WHERE id = (SELECT customer_id FROM "VC Usage" WHERE user_message = %L);', 'm' || j);
                END IF;
            ELSIF op < 0.77 THEN
                RETURN NEXT format('UPDATE customers SET deleted_at = now() '
                                   'WHERE id = (SELECT customer_id FROM "VC Usage" WHERE user_message = %L) AND deleted_at IS NULL;',
                                   'm' || j);
            ELSIF op < 0.82 THEN
                -- merge the customer of chat j into the customer of chat k
                RETURN NEXT format('UPDATE customers SET merged_into_customer_id = t.id%s '
                                   'FROM (SELECT customer_id AS id FROM "VC Usage" WHERE user_message = %L) t '
                                   'WHERE customers.id = (SELECT customer_id FROM "VC Usage" WHERE user_message = %L) '
                                   'AND t.id IS NOT NULL AND t.id <> customers.id;',
                                   CASE WHEN random() < 0.5 THEN ', deleted_at = now()' ELSE '' END, 'm' || k, 'm' || j);
            ELSIF op < 0.86 THEN
                RETURN NEXT format('DELETE FROM "VC Usage" WHERE user_message = %L;', 'm' || j);
            ELSIF op < 0.88 AND p_app_only THEN
                -- the same hard delete as crm_app: a definer function (which
                -- bypasses RLS) tells whether anybody was merged into it
                RETURN NEXT format('DELETE FROM customers c '
                                   'WHERE c.id = (SELECT customer_id FROM "VC Usage" WHERE user_message = %L) '
                                   'AND NOT schema_variant.has_merge_sources(c.id);',
                                   'm' || j);
            ELSIF op < 0.88 THEN
                -- hard delete of a customer nobody was merged into (as the owner:
                -- the application role cannot see soft-deleted merge sources)
                RETURN NEXT format('RESET ROLE; DELETE FROM customers c '
                                   'WHERE c.id = (SELECT customer_id FROM "VC Usage" WHERE user_message = %L) '
                                   'AND NOT EXISTS (SELECT 1 FROM customers m WHERE m.merged_into_customer_id = c.id);',
                                   'm' || j);
            ELSIF op < 0.92 THEN
                -- move a conversation to another live customer of its company
                -- (or unlink it when there is none: the native sync refuses a
                -- link to another company's or a deleted customer, plpgsql
                -- did not, and the workload compares committed states)
                RETURN NEXT format('UPDATE "VC Usage" u SET customer_id = (SELECT v.customer_id FROM "VC Usage" v '
                                   'JOIN customers c ON c.id = v.customer_id AND c.company_id = u.company_id '
                                   'AND c.deleted_at IS NULL WHERE v.user_message = %L) '
                                   'WHERE user_message = %L;', 'm' || k, 'm' || j);
            ELSIF op < 0.96 THEN
                RETURN NEXT format('UPDATE "VC Usage" SET view_count = coalesce(view_count, 0) + %s '
                                   'WHERE company_id = %L AND session_id LIKE %L;',
                                   1 + floor(random() * 3)::int, companies[c],
                                   format('S%s_%s_%%', c, 1 + floor(random() * 40)::int));
            ELSE
                -- a customer entered by hand, possibly a duplicate of a chat customer
                p := 1 + floor(random() * 40)::int;
                RETURN NEXT format('INSERT INTO customers (company_id, customer_name, customer_email, customer_phone, '
                                   'source, created_by_user_id, tags, metadata) VALUES (%L, %L, %s, %s, %L, %L, %L, %L);',
                                   companies[c], difftest.person_name(p, 0),
                                   CASE WHEN random() < 0.7 THEN quote_literal(difftest.person_email(p, 0)) ELSE 'NULL' END,
                                   CASE WHEN random() < 0.7 THEN quote_literal(difftest.person_phone(p, 1)) ELSE 'NULL' END,
                                   'manual', users[c], '{vip}', format('{"step": %s}', step));
            END IF;
        END LOOP;
        RETURN NEXT 'COMMIT;';
    END LOOP;
END;
$$;
