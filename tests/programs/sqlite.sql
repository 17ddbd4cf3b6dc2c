-- sqlite.sql - a database workload: a few MB of rows, an index, updates,
-- deletes, a join and aggregates. Output depends only on the data.
PRAGMA cache_size = -16000;
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, payload BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 40000)
INSERT INTO t SELECT x, x % 97, 'name-' || (x * 7919 % 40000), zeroblob(40 + x % 120) FROM c;
CREATE INDEX t_name ON t(name);
UPDATE t SET name = name || '-u' WHERE grp % 5 = 0;
DELETE FROM t WHERE id % 11 = 0;
CREATE TABLE g AS SELECT grp, count(*) AS n, sum(length(payload)) AS bytes FROM t GROUP BY grp;
SELECT count(*), sum(length(payload)), max(name) FROM t;
SELECT g.grp, g.n, g.bytes FROM g WHERE g.grp < 5 ORDER BY g.grp;
SELECT t.grp, count(*) FROM t JOIN g ON t.grp = g.grp WHERE g.n > 370 GROUP BY t.grp ORDER BY 2 DESC, 1 LIMIT 5;
SELECT name FROM t WHERE name LIKE 'name-1234%' ORDER BY name;
