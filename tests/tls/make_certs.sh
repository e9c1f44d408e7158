#!/usr/bin/env bash
# Makes the certificates the TLS tests and the TLS benchmark use, with openssl, into DIR:
#   ca.pem ca.key               the test CA (RSA 2048)
#   server.pem server.key       localhost / 127.0.0.1 / ::1, RSA 2048, signed by the CA
#   server-ec.pem server-ec.key the same names on an ECDSA P-256 key (the reload test swaps it in)
#   guest.pem guest.key         a client certificate for the user guest (CN=guest)
#   stranger.pem stranger.key   a client certificate for a user that does not exist
#   expired.pem                 guest's key, in a certificate that has expired
#   rogue-ca.pem rogue.pem rogue.key  another CA, and a guest certificate it signed
# Usage: tests/tls/make_certs.sh DIR
set -euo pipefail
DIR="${1:?usage: make_certs.sh DIR}"
mkdir -p "$DIR"
cd "$DIR"
quiet() { "$@" >/dev/null 2>&1 || { echo "make_certs.sh: failed: $*" >&2; "$@"; exit 1; }; }

ca() { # ca NAME SUBJECT
  quiet openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.pem" -days 3650 \
    -subj "$2" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=keyCertSign,cRLSign"
}
leaf() { # leaf NAME CA SUBJECT EXTENSIONS KEYTYPE [DAYS]
  local name="$1" issuer="$2" subject="$3" ext="$4" key="$5" days="${6:-3650}"
  case "$key" in
    rsa) quiet openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subject" ;;
    ec) quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
          -keyout "$name.key" -out "$name.csr" -subj "$subject" ;;
    reuse:*) quiet openssl req -new -key "${key#reuse:}.key" -out "$name.csr" -subj "$subject" ;;
  esac
  printf '%s\n' "$ext" > "$name.ext"
  # A negative day count makes a certificate that expired at once (notAfter < now).
  quiet openssl x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" \
    -CAcreateserial -out "$name.pem" -days "$days" -extfile "$name.ext"
  rm -f "$name.csr" "$name.ext"
}

SERVER_EXT="subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage=serverAuth"
CLIENT_EXT="extendedKeyUsage=clientAuth"

ca ca "/O=Warren tests/CN=Warren test CA"
leaf server ca "/O=Warren tests/CN=localhost" "$SERVER_EXT" rsa
leaf server-ec ca "/O=Warren tests/CN=localhost (ECDSA)" "$SERVER_EXT" ec
leaf guest ca "/O=Warren tests/CN=guest" "$CLIENT_EXT" rsa
leaf stranger ca "/O=Warren tests/CN=stranger" "$CLIENT_EXT" rsa
leaf expired ca "/O=Warren tests/CN=guest" "$CLIENT_EXT" reuse:guest -1
ca rogue-ca "/O=Somebody else/CN=Rogue CA"
leaf rogue rogue-ca "/O=Somebody else/CN=guest" "$CLIENT_EXT" rsa
