package policy

import (
	"fmt"
	"strings"
)

// CheckAccessURLScheme applies Nova's scheme rule on top of the Origin
// rules (nova/console/websocketproxy.py, verify_origin_proto): when a token
// record carries access_url_base, a browser's Origin scheme must be the one
// that URL's scheme stands for, ws and http being the plain pair and wss and
// https the secure one. originScheme is "" when the request had no Origin
// (a non-browser client: nothing to check), else the lowercase scheme that
// OriginPolicy.Check accepted. An empty accessURLBase checks nothing (the
// record does not say how it is reached); one whose scheme is missing or not
// http, https, ws or wss refuses, where Nova would compare against garbage.
// The error is a fixed phrase: the URL is never part of it.
func CheckAccessURLScheme(accessURLBase, originScheme string) error {
	if accessURLBase == "" || originScheme == "" {
		return nil
	}
	scheme, _, ok := strings.Cut(accessURLBase, "://")
	if !ok {
		return fmt.Errorf("%w: access_url_base has no scheme", ErrOriginRefused)
	}
	var want string
	switch strings.ToLower(scheme) {
	case "http", "ws":
		want = "http"
	case "https", "wss":
		want = "https"
	default:
		return fmt.Errorf("%w: access_url_base scheme is not http, https, ws or wss", ErrOriginRefused)
	}
	if originScheme != want {
		return fmt.Errorf("%w: origin scheme does not match access_url_base", ErrOriginRefused)
	}
	return nil
}

// OriginScheme is the scheme of an Origin that Check accepted: the one of
// the connection ("" when no Origin was sent).
func OriginScheme(present, secure bool) string {
	switch {
	case !present:
		return ""
	case secure:
		return "https"
	}
	return "http"
}
