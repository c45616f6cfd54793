// Package policy holds the access rules applied at upgrade time: where the
// token comes from (query or cookie), the Origin rules, which peers may set
// forwarding headers, and the token-reuse policies. Pure functions over
// bytes except the reuse guard's map; no I/O, no logging.
package policy
