// Package e2e holds black-box tests of the real tokenmq binary: it is built
// once per test run, started as a child process on 127.0.0.1:0 and driven
// over its real sockets.
package e2e
