"""Migration 1, the baseline: the schema ws created before ordered migrations existed.

Frozen: this is the exact DDL that catalogs with ``user_version`` 1010102 hold
(rendered then from the SQLModel classes). Never edit it; change the schema
with a new migration.
"""

from __future__ import annotations

import sqlite3

DDL = """
CREATE TABLE chunks (
	id VARCHAR NOT NULL,
	pack_id VARCHAR NOT NULL,
	"offset" INTEGER NOT NULL,
	length INTEGER NOT NULL,
	raw_length INTEGER NOT NULL,
	codec INTEGER NOT NULL,
	PRIMARY KEY (id)
);
CREATE TABLE commits (
	id VARCHAR NOT NULL,
	tree_id VARCHAR NOT NULL,
	parents VARCHAR NOT NULL,
	branch VARCHAR,
	message VARCHAR NOT NULL,
	author VARCHAR NOT NULL,
	time_ns INTEGER NOT NULL,
	provenance VARCHAR,
	PRIMARY KEY (id)
);
CREATE TABLE files (
	id VARCHAR NOT NULL,
	size INTEGER NOT NULL,
	chunk_ids BLOB NOT NULL,
	PRIMARY KEY (id)
);
CREATE TABLE head_manifest (
	path VARCHAR NOT NULL,
	file_id VARCHAR NOT NULL,
	size INTEGER NOT NULL,
	mode INTEGER NOT NULL,
	PRIMARY KEY (path)
);
CREATE TABLE job_events (
	id INTEGER NOT NULL,
	job_id VARCHAR NOT NULL,
	state VARCHAR NOT NULL,
	time_ns INTEGER NOT NULL,
	detail VARCHAR,
	PRIMARY KEY (id)
);
CREATE TABLE jobs (
	id VARCHAR NOT NULL,
	workflow_id VARCHAR NOT NULL,
	name VARCHAR NOT NULL,
	"key" VARCHAR NOT NULL,
	params VARCHAR NOT NULL,
	state VARCHAR NOT NULL,
	backend VARCHAR NOT NULL,
	backend_id VARCHAR,
	attempts INTEGER NOT NULL,
	exit_code INTEGER,
	priority INTEGER NOT NULL,
	command VARCHAR NOT NULL,
	spec_path VARCHAR,
	resources VARCHAR NOT NULL,
	policies VARCHAR NOT NULL,
	env VARCHAR NOT NULL,
	workdir VARCHAR,
	outputs VARCHAR NOT NULL,
	depends_on VARCHAR NOT NULL,
	input_commit VARCHAR,
	output_commit VARCHAR,
	log_dir VARCHAR,
	environment VARCHAR,
	reason VARCHAR,
	submitted_ns INTEGER NOT NULL,
	started_ns INTEGER,
	finished_ns INTEGER,
	submitted_at VARCHAR,
	started_at VARCHAR,
	finished_at VARCHAR,
	listing VARCHAR,
	PRIMARY KEY (id)
);
CREATE TABLE meta (
	"key" VARCHAR NOT NULL,
	value VARCHAR NOT NULL,
	PRIMARY KEY ("key")
);
CREATE TABLE packs (
	id VARCHAR NOT NULL,
	size INTEGER NOT NULL,
	chunk_count INTEGER NOT NULL,
	created_ns INTEGER NOT NULL,
	PRIMARY KEY (id)
);
CREATE TABLE refs (
	name VARCHAR NOT NULL,
	commit_id VARCHAR NOT NULL,
	updated_ns INTEGER NOT NULL,
	PRIMARY KEY (name)
);
CREATE TABLE release_files (
	release_id INTEGER NOT NULL,
	path VARCHAR NOT NULL,
	file_id VARCHAR NOT NULL,
	size INTEGER NOT NULL,
	mode INTEGER NOT NULL,
	PRIMARY KEY (release_id, path)
);
CREATE TABLE releases (
	id INTEGER NOT NULL,
	title VARCHAR NOT NULL,
	version VARCHAR NOT NULL,
	description VARCHAR NOT NULL,
	metadata_json VARCHAR NOT NULL,
	commit_id VARCHAR,
	job VARCHAR,
	author VARCHAR NOT NULL,
	created_at VARCHAR NOT NULL,
	created_ns INTEGER NOT NULL,
	digest VARCHAR NOT NULL,
	file_count INTEGER NOT NULL,
	total_size INTEGER NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (title, version)
);
CREATE TABLE remote_chunks (
	remote VARCHAR NOT NULL,
	chunk_id VARCHAR NOT NULL,
	pack_id VARCHAR NOT NULL,
	"offset" INTEGER NOT NULL,
	length INTEGER NOT NULL,
	raw_length INTEGER NOT NULL,
	codec INTEGER NOT NULL,
	PRIMARY KEY (remote, chunk_id)
);
CREATE TABLE remote_packs (
	remote VARCHAR NOT NULL,
	pack_id VARCHAR NOT NULL,
	size INTEGER NOT NULL,
	chunk_count INTEGER NOT NULL,
	learned_ns INTEGER NOT NULL,
	PRIMARY KEY (remote, pack_id)
);
CREATE TABLE remote_releases (
	remote VARCHAR NOT NULL,
	title VARCHAR NOT NULL,
	version VARCHAR NOT NULL,
	digest VARCHAR NOT NULL,
	state VARCHAR NOT NULL,
	recorded_ns INTEGER NOT NULL,
	PRIMARY KEY (remote, title, version)
);
CREATE TABLE stat_cache (
	path VARCHAR NOT NULL,
	size INTEGER NOT NULL,
	mtime_ns INTEGER NOT NULL,
	ino INTEGER NOT NULL,
	file_id VARCHAR NOT NULL,
	recorded_ns INTEGER NOT NULL,
	PRIMARY KEY (path)
);
CREATE TABLE status_snapshot (
	id INTEGER NOT NULL,
	generation INTEGER NOT NULL,
	data BLOB NOT NULL,
	PRIMARY KEY (id)
);
CREATE TABLE trees (
	id VARCHAR NOT NULL,
	data BLOB NOT NULL,
	PRIMARY KEY (id)
);
CREATE TABLE workflows (
	id VARCHAR NOT NULL,
	created_ns INTEGER NOT NULL,
	specs VARCHAR NOT NULL,
	supervisor_pid INTEGER,
	supervisor_host VARCHAR,
	state VARCHAR NOT NULL,
	PRIMARY KEY (id)
);
CREATE INDEX ix_chunks_pack_id ON chunks (pack_id);
CREATE INDEX ix_commits_time_ns ON commits (time_ns);
CREATE INDEX ix_job_events_job_id ON job_events (job_id);
CREATE INDEX ix_jobs_key ON jobs ("key");
CREATE INDEX ix_jobs_name ON jobs (name);
CREATE INDEX ix_jobs_state ON jobs (state);
CREATE INDEX ix_jobs_submitted_ns ON jobs (submitted_ns);
CREATE INDEX ix_jobs_workflow_id ON jobs (workflow_id);
CREATE INDEX ix_release_files_file_id ON release_files (file_id);
CREATE INDEX ix_releases_title ON releases (title);
CREATE INDEX ix_remote_chunks_pack_id ON remote_chunks (pack_id);
CREATE INDEX ix_workflows_state ON workflows (state);
"""


def apply(conn: sqlite3.Connection) -> None:
    """Create every baseline table and index (skipping those that exist)."""
    for statement in DDL.split(";"):
        statement = statement.strip()
        if statement:
            conn.execute(statement.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1)
                         .replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1))
