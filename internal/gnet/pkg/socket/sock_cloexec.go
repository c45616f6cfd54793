// Copyright (c) 2020 The Gnet Authors. All rights reserved.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//go:build dragonfly || freebsd || linux

package socket

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func sysSocket(family, sotype, proto int) (int, error) {
	return unix.Socket(family, sotype|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
}

// consoleproxy patch (PATCH.md): accept4 as a raw system call (on a
// non-blocking listener it never sleeps, pkg/io/raw_linux.go), converting
// the peer's address here: x/sys/unix's conversion asks the listening
// socket's SO_PROTOCOL (getsockopt) on every accept of an IPv4 or IPv6
// peer, to tell L2TP apart.
func sysAccept(fd int) (int, unix.Sockaddr, error) {
	var rsa unix.RawSockaddrAny
	size := uint32(unix.SizeofSockaddrAny)
	r, _, e := syscall.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&size)),
		unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, nil, e
	}
	nfd := int(r)
	switch rsa.Addr.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(&rsa))
		return nfd, &unix.SockaddrInet4{Port: port(a.Port), Addr: a.Addr}, nil
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(&rsa))
		return nfd, &unix.SockaddrInet6{Port: port(a.Port), ZoneId: a.Scope_id, Addr: a.Addr}, nil
	case unix.AF_UNIX:
		a := (*unix.RawSockaddrUnix)(unsafe.Pointer(&rsa))
		n := 0
		for n < len(a.Path) && a.Path[n] != 0 {
			n++
		}
		name := make([]byte, n)
		for i := range name {
			name[i] = byte(a.Path[i])
		}
		return nfd, &unix.SockaddrUnix{Name: string(name)}, nil
	}
	return nfd, nil, nil
}

// port reads a sockaddr's port, stored in network byte order.
func port(p uint16) int {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return int(b[0])<<8 | int(b[1])
}
