-- Matching-key normalization from SQL: crm_native.normalize_email/phone/name,
-- the GUCs crm_native.default_region and crm_native.email_provider_rules,
-- version_info(), and how the functions are declared.
\set VERBOSITY default
\pset null <null>

-- the contract's answers
SELECT crm_native.normalize_phone('+1-555-123-4567') AS international,
       crm_native.normalize_phone('(555) 123-4567') AS national;

-- phones in many formats (default region US)
SELECT input, crm_native.normalize_phone(input) AS key
FROM (VALUES ('555.123.4567'), ('1 (555) 123-4567'), ('+44 20 7946 0958'),
             ('011 44 20 7946 0958'), ('555-123-4567 ext. 89'), ('1-800-FLOWERS'),
             ('＋１ ５５５ １２３ ４５６７'), ('12345'), ('+999 123 456'), ('n/a'), (''), ('   ')) AS t(input);

-- an explicit region reads national numbers there
SELECT crm_native.normalize_phone('020 7946 0958', 'GB') AS uk,
       crm_native.normalize_phone('030 1234567', 'de') AS germany,
       crm_native.normalize_phone('+1 555 123 4567', 'JP') AS international_ignores_region;

-- an unknown region is an error naming it (invalid_parameter_value)
SELECT crm_native.normalize_phone('555-123-4567', 'XX');
\echo :LAST_ERROR_SQLSTATE
SELECT crm_native.normalize_phone('', 'Atlantis');

-- names: NFKC case-fold, trimmed, inner whitespace collapsed
SELECT input, crm_native.normalize_name(input) AS key
FROM (VALUES ('  John   Doe  '), (E'JOHN\tDOE\n'), ('Ｊｏｈｎ　Ｄｏｅ'), ('ﬁona'), ('Straße'),
             ('İstanbul'), ('José'), (E'Jo\u200Bhn'), (''), (E' \t\u3000 ')) AS t(input);

-- emails: trimmed, lower-cased; Gmail rules only when asked
SELECT crm_native.normalize_email('  John.Doe+news@GMail.com ') AS rules_off,
       crm_native.normalize_email('  John.Doe+news@GMail.com ', true) AS rules_on,
       crm_native.normalize_email('j.doe+x@example.com', true) AS other_domain,
       crm_native.normalize_email('   ') AS blank;

-- NULL in, NULL out
SELECT crm_native.normalize_email(NULL) IS NULL AS email,
       crm_native.normalize_email(NULL, true) IS NULL AS email_rules,
       crm_native.normalize_phone(NULL) IS NULL AS phone,
       crm_native.normalize_phone(NULL, 'US') IS NULL AS phone_region,
       crm_native.normalize_phone('555-123-4567', NULL) IS NULL AS null_region,
       crm_native.normalize_name(NULL) IS NULL AS name;

-- a 1 MB string returns promptly: the phone bound rejects it unparsed, and
-- names and emails over 64 kB are refused before any work (a 50 MB name
-- took 10 s that no cancel could interrupt; found by an independent
-- tester), as is a key over 2 kB, which the keys index could not hold
-- (generous margin: shared machine)
SELECT clock_timestamp() AS t0 \gset
SELECT crm_native.normalize_phone(repeat('5', 1048576)) IS NULL AS phone_no_key;
SELECT crm_native.normalize_name(repeat('Ab  ', 262144));
SELECT crm_native.normalize_email(repeat('A', 1048576));
SELECT crm_native._matching_key('name', repeat('Ab  ', 262144)) IS NULL AS no_name_key,
       crm_native._matching_key('email', repeat('A', 1048576)) IS NULL AS no_email_key;
SELECT clock_timestamp() - :'t0'::timestamptz < interval '5 seconds' AS prompt;
-- the key bound: 2,048 bytes are a key, 2,049 are not
SELECT length(crm_native.normalize_name(repeat('Ab ', 683))) AS name_at_bound,
       length(crm_native.normalize_email(repeat('a', 2048))) AS email_at_bound;
SELECT crm_native.normalize_name(repeat('Ab ', 684));
SELECT crm_native.normalize_email(repeat('a', 2049));
-- more than 30 combining marks in a row (Unicode's stream-safe limit) are
-- refused before ICU sorts them, quadratically and uncancellably (a 64 kB
-- name of alternating marks took 0.7 s; found by an independent review)
SELECT length(crm_native.normalize_name('a' || repeat(U&'\0301', 30))) AS thirty_marks;
SELECT crm_native.normalize_name('a' || repeat(U&'\0301', 31));
SELECT crm_native._matching_key('name', 'a' || repeat(U&'\0301', 16380) || repeat(U&'\0316', 16380)) IS NULL
       AS no_name_key;
-- the bound itself: 250 bytes are read, 251 are no key
SELECT crm_native.normalize_phone(rpad('+1 555 123 4567', 250)) AS at_bound,
       crm_native.normalize_phone(rpad('+1 555 123 4567', 251)) IS NULL AS over_bound;

-- GUC crm_native.default_region
SHOW crm_native.default_region;
SET crm_native.default_region = 'GB';
SELECT crm_native.normalize_phone('020 7946 0958') AS uk_national,
       crm_native.normalize_phone('+1-555-123-4567') AS international;
SET crm_native.default_region = 'XX';
SHOW crm_native.default_region;
RESET crm_native.default_region;
SELECT crm_native.normalize_phone('(555) 123-4567') AS back_to_us;

-- GUC crm_native.email_provider_rules
SHOW crm_native.email_provider_rules;
SET crm_native.email_provider_rules = on;
SELECT crm_native.normalize_email('J.Doe+x@googlemail.com') AS rules_on;
RESET crm_native.email_provider_rules;
SELECT crm_native.normalize_email('J.Doe+x@googlemail.com') AS rules_off;

-- declared volatility: IMMUTABLE only where the arguments alone decide
SELECT p.oid::regprocedure AS function, p.provolatile, p.proisstrict, p.proparallel
FROM pg_proc p
WHERE p.pronamespace = 'crm_native'::regnamespace
  AND p.proname IN ('normalize_email', 'normalize_phone', 'normalize_name', 'version_info')
ORDER BY 1::text;

-- the library versions the keys depend on
SELECT jsonb_object_keys(crm_native.version_info()) AS key ORDER BY 1;
SELECT crm_native.version_info()->>'icu' ~ '^[0-9]+\.[0-9]+' AS icu_version,
       crm_native.version_info()->>'libphonenumber' ~ '^[0-9]+\.[0-9]+' AS phonenumber_version,
       crm_native.version_info()->>'crm_native' AS crm_native;

-- start-up cost is paid once per backend
SELECT crm_native._normalization_warm_up() >= 0 AS warmed;
SELECT crm_native._normalization_warm_up() < 50 AS second_call_cheap;
