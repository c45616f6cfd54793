// Package wsframe is RFC 6455 as pure functions over byte slices: the
// incremental frame parser with every rule a server must enforce, in-place
// unmasking, server frame encoders, the HTTP upgrade-request parser and its
// response builders, and streaming base64 for the "base64" subprotocol.
//
// Nothing here does I/O, logs or starts goroutines. Hot-path functions do not
// allocate (the tests say so). Every function that takes or returns bytes
// says in its doc comment who owns them.
package wsframe
