package novadbtest

import (
	"fmt"
	"strings"
)

// The tables as Nova's alembic migrations leave them in its main (cell)
// database, rendered by SQLAlchemy for each backend:
// 8f2f1571d55b_initial_version (both tables), 960aac0e09ea (drops the
// duplicate indexes console_auth_tokens_token_hash_idx and instances'
// uuid), 1acf2c98e646 (instances.compute_id) and 2903cd72dc14
// (console_auth_tokens.tls_port, Nova 2024.2). Instances are soft-deleted:
// deleted = 0 while live, deleted = id once deleted.

// consoleAuthTokens is the table before 2903cd72dc14; %[1]s is the DATETIME type,
// %[2]s the id column, %[3]s the table options.
const consoleAuthTokens = `CREATE TABLE console_auth_tokens (
	created_at %[1]s,
	updated_at %[1]s,
	id %[2]s,
	token_hash VARCHAR(255) NOT NULL,
	console_type VARCHAR(255) NOT NULL,
	host VARCHAR(255) NOT NULL,
	port INTEGER NOT NULL,
	internal_access_path VARCHAR(255),
	instance_uuid VARCHAR(36) NOT NULL,
	expires INTEGER NOT NULL,
	access_url_base VARCHAR(255),
	PRIMARY KEY (id),
	CONSTRAINT uniq_console_auth_tokens0token_hash UNIQUE (token_hash)
)%[3]s`

// instancesTable: %[1]s DATETIME, %[2]s id, %[3]s table options, %[4]s
// MEDIUMTEXT, %[5]s InetSmall, %[6]s BOOLEAN, %[7]s the locked_by enum.
const instancesTable = `CREATE TABLE instances (
	created_at %[1]s,
	updated_at %[1]s,
	deleted_at %[1]s,
	id %[2]s,
	internal_id INTEGER,
	user_id VARCHAR(255),
	project_id VARCHAR(255),
	image_ref VARCHAR(255),
	kernel_id VARCHAR(255),
	ramdisk_id VARCHAR(255),
	launch_index INTEGER,
	key_name VARCHAR(255),
	key_data %[4]s,
	power_state INTEGER,
	vm_state VARCHAR(255),
	memory_mb INTEGER,
	vcpus INTEGER,
	hostname VARCHAR(255),
	host VARCHAR(255),
	user_data %[4]s,
	reservation_id VARCHAR(255),
	launched_at %[1]s,
	terminated_at %[1]s,
	display_name VARCHAR(255),
	display_description VARCHAR(255),
	availability_zone VARCHAR(255),
	locked %[6]s,
	os_type VARCHAR(255),
	launched_on %[4]s,
	instance_type_id INTEGER,
	vm_mode VARCHAR(255),
	uuid VARCHAR(36) NOT NULL,
	architecture VARCHAR(255),
	root_device_name VARCHAR(255),
	access_ip_v4 %[5]s,
	access_ip_v6 %[5]s,
	config_drive VARCHAR(255),
	task_state VARCHAR(255),
	default_ephemeral_device VARCHAR(255),
	default_swap_device VARCHAR(255),
	progress INTEGER,
	auto_disk_config %[6]s,
	shutdown_terminate %[6]s,
	disable_terminate %[6]s,
	root_gb INTEGER,
	ephemeral_gb INTEGER,
	cell_name VARCHAR(255),
	node VARCHAR(255),
	deleted INTEGER,
	locked_by %[7]s,
	cleaned INTEGER,
	ephemeral_key_uuid VARCHAR(36),
	hidden %[6]s,
	compute_id BIGINT,
	PRIMARY KEY (id),
	CONSTRAINT uniq_instances0uuid UNIQUE (uuid)
)%[3]s`

// indexes are the two tables' indexes after 960aac0e09ea and 1acf2c98e646.
var indexes = []string{
	"console_auth_tokens_instance_uuid_idx ON console_auth_tokens (instance_uuid)",
	"console_auth_tokens_host_expires_idx ON console_auth_tokens (host, expires)",
	"console_auth_tokens_token_hash_instance_uuid_idx ON console_auth_tokens (token_hash, instance_uuid)",
	"instances_reservation_id_idx ON instances (reservation_id)",
	"instances_terminated_at_launched_at_idx ON instances (terminated_at, launched_at)",
	"instances_task_state_updated_at_idx ON instances (task_state, updated_at)",
	"instances_uuid_deleted_idx ON instances (uuid, deleted)",
	"instances_host_node_deleted_idx ON instances (host, node, deleted)",
	"instances_host_deleted_cleaned_idx ON instances (host, deleted, cleaned)",
	"instances_project_id_deleted_idx ON instances (project_id, deleted)",
	"instances_deleted_created_at_idx ON instances (deleted, created_at)",
	"instances_project_id_idx ON instances (project_id)",
	"instances_updated_at_project_id_idx ON instances (updated_at, project_id)",
	"instances_compute_id_deleted_idx ON instances (compute_id, deleted)",
}

// schema returns the statements creating both tables on kind; withTLSPort
// applies 2903cd72dc14 too.
func schema(kind string, withTLSPort bool) []string {
	var out []string
	if kind == MariaDB {
		opts := " ENGINE=InnoDB DEFAULT CHARSET=utf8"
		id := "INTEGER NOT NULL AUTO_INCREMENT"
		out = append(out,
			fmt.Sprintf(consoleAuthTokens, "DATETIME", id, opts),
			fmt.Sprintf(instancesTable, "DATETIME", id, opts, "MEDIUMTEXT", "VARCHAR(39)", "BOOL", "ENUM('owner','admin')"))
	} else {
		ts := "TIMESTAMP WITHOUT TIME ZONE"
		out = append(out,
			"CREATE TYPE instances0locked_by AS ENUM ('owner', 'admin')",
			fmt.Sprintf(consoleAuthTokens, ts, "SERIAL NOT NULL", ""),
			fmt.Sprintf(instancesTable, ts, "SERIAL NOT NULL", "", "TEXT", "INET", "BOOLEAN", "instances0locked_by"))
	}
	for _, ix := range indexes {
		out = append(out, "CREATE INDEX "+ix)
	}
	if withTLSPort {
		out = append(out, "ALTER TABLE console_auth_tokens ADD COLUMN tls_port INTEGER")
	}
	return out
}

// quoteIdent quotes a database name for kind.
func quoteIdent(kind, name string) string {
	if kind == MariaDB {
		return "`" + strings.ReplaceAll(name, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
