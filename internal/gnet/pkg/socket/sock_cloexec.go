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

	"golang.org/x/sys/unix"
)

func sysSocket(family, sotype, proto int) (int, error) {
	return unix.Socket(family, sotype|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
}

// consoleproxy patch (PATCH.md): accept4 through package syscall, whose
// address conversion asks nothing of the kernel; x/sys/unix's asks the
// listening socket's SO_PROTOCOL (getsockopt) on every accept of an IPv4
// or IPv6 peer, to tell L2TP apart.
func sysAccept(fd int) (nfd int, sa unix.Sockaddr, err error) {
	nfd, ssa, err := syscall.Accept4(fd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
	if err != nil {
		return -1, nil, err
	}
	switch a := ssa.(type) {
	case *syscall.SockaddrInet4:
		return nfd, &unix.SockaddrInet4{Port: a.Port, Addr: a.Addr}, nil
	case *syscall.SockaddrInet6:
		return nfd, &unix.SockaddrInet6{Port: a.Port, ZoneId: a.ZoneId, Addr: a.Addr}, nil
	case *syscall.SockaddrUnix:
		return nfd, &unix.SockaddrUnix{Name: a.Name}, nil
	}
	return nfd, nil, nil
}
