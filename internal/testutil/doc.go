// Package testutil holds the helpers tests share, one copy of each.
package testutil
