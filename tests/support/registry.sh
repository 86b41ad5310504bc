# SPDX-License-Identifier: Apache-2.0
# Sourced helper: private docker-registry instances on 127.0.0.1 for the registry source's tests,
# the token server and the misbehaving proxies. Needs nginx.sh sourced first (_free_port,
# _make_certs: a private CA and a server certificate for localhost/127.0.0.1, HTUSER/HTPASS).
#
#   registry_start WORK MODE   MODE = plain | tls | auth (htpasswd, plain HTTP) | tls-auth |
#                              tls-token / token (Bearer tokens from token_server.py, over TLS /
#                              plain HTTP; TOKEN_ARGS adds token_server.py options) |
#                              tls-client (TLS requiring a client certificate signed by the CA:
#                              WORK/certs/client.cert + client.key, certs.d style)
#       REGISTRY_DATA (optional): serve this storage directory (e.g. another registry's: images
#       pushed there are served here too).
#       -> REGISTRY_PORT, REGISTRY_URL (http[s]://127.0.0.1:PORT), REGISTRY_STORAGE; the PIDs are
#          registered with register_pid-like cleanup through the caller's `registry_stop_all`.
#   registry_push WORK LAYOUT TAG REPO[:DESTTAG]   push a layout tag to the last started registry
#   proxy_start WORK MODE      corrupt | corrupt-second | redirect, in front of the last started plain registry
#       -> PROXY_PORT, PROXY_LOG
#   registry_stop_all          stops every server started here
# Certificates: WORK/certs/ca.crt (CA), WORK/certs/certdir/ (the CA as --cert-dir).

REGISTRY_PIDS=()
SUPPORT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

_wait_port_file() {
  local f=$1 i
  for i in $(seq 1 250); do
    [[ -s $f ]] && return 0
    sleep 0.02
  done
  return 1
}

# _make_client_cert DIR: DIR/client.cert + client.key, signed by DIR/ca.crt (clientAuth).
_make_client_cert() {
  local d=$1
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$d/client.key" \
    -out "$d/client.csr" -subj "/CN=cdi-import test client" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=clientAuth" > "$d/client.ext"
  openssl x509 -req -in "$d/client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -out "$d/client.cert" -days 825 -extfile "$d/client.ext" 2>/dev/null
}

registry_start() {
  local work=$1 mode=$2 try
  local data=${REGISTRY_DATA:-$work/data}
  mkdir -p "$data"
  HTUSER=${HTUSER:-testuser}
  HTPASS=${HTPASS:-'s3cret pass:word'}
  [[ -f $work/certs/ca.crt ]] || _make_certs "$work/certs"
  local scheme=http tls="" auth=""
  local curl_client=()
  case $mode in tls | tls-auth | tls-token | tls-client)
    scheme=https
    tls="  tls: {certificate: $work/certs/server.crt, key: $work/certs/server.key}" ;;
  esac
  if [[ $mode == tls-client ]]; then
    _make_client_cert "$work/certs"
    tls="  tls: {certificate: $work/certs/server.crt, key: $work/certs/server.key, clientcas: [$work/certs/ca.crt]}"
    curl_client=(--cert "$work/certs/client.cert" --key "$work/certs/client.key")
  fi
  case $mode in
    auth | tls-auth) auth="auth: {htpasswd: {realm: cdi-registry, path: $work/certs/htpasswd}}" ;;
    tls-token | token)
      rm -f "$work/token.port"
      /usr/bin/python3 "$SUPPORT_DIR/token_server.py" "$work" --user "$HTUSER" --password "$HTPASS" \
        --portfile "$work/token.port" --lifetime 900 ${TOKEN_ARGS:-} </dev/null >/dev/null 2>"$work/token.log" &
      REGISTRY_PIDS+=($!)
      _wait_port_file "$work/token.port" || { echo "token server did not start" >&2; return 1; }
      TOKEN_PORT=$(cat "$work/token.port")
      auth="auth: {token: {realm: \"http://127.0.0.1:$TOKEN_PORT/token\", service: cdi-test-registry, issuer: cdi-test-token-issuer, rootcertbundle: $work/token.crt}}" ;;
  esac
  for try in 1 2 3 4 5; do
    REGISTRY_PORT=$(_free_port)
    cat > "$work/config.yml" <<CONF
version: 0.1
log: {level: info, formatter: text}
storage:
  filesystem: {rootdirectory: $data}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$REGISTRY_PORT
  secret: cdi-test-not-secret
$tls
$auth
CONF
    /usr/bin/docker-registry serve "$work/config.yml" </dev/null >"$work/registry.log" 2>&1 &
    local pid=$! i code
    REGISTRY_URL=$scheme://127.0.0.1:$REGISTRY_PORT
    REGISTRY_STORAGE=$data
    for i in $(seq 1 250); do
      code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/certs/ca.crt" "${curl_client[@]}" "$REGISTRY_URL/v2/" || true)
      if [[ $code == 200 || $code == 401 ]]; then
        REGISTRY_PIDS+=("$pid")
        REGISTRY_CA=$work/certs/ca.crt
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.02
    done
    kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    grep -q "address already in use" "$work/registry.log" || { cat "$work/registry.log" >&2; return 1; }
  done
  return 1
}

registry_push() {
  local layout=$1 tag=$2 repo=$3
  /usr/bin/python3 "$SUPPORT_DIR/oci_push.py" "$layout" "$tag" "$REGISTRY_URL" "$repo" \
    --user "$HTUSER" --password "$HTPASS" --cacert "$REGISTRY_CA" >/dev/null
}

proxy_start() {
  local work=$1 mode=$2
  mkdir -p "$work"
  rm -f "$work/proxy.port"
  PROXY_LOG=$work/proxy.log
  /usr/bin/python3 "$SUPPORT_DIR/registry_proxy.py" "$REGISTRY_URL" --mode "$mode" --storage "$REGISTRY_STORAGE" \
    --portfile "$work/proxy.port" --lifetime 900 </dev/null >/dev/null 2>"$PROXY_LOG" &
  REGISTRY_PIDS+=($!)
  _wait_port_file "$work/proxy.port" || { echo "proxy did not start" >&2; return 1; }
  PROXY_PORT=$(cat "$work/proxy.port")
}

registry_stop_all() {
  local p
  for p in "${REGISTRY_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${REGISTRY_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  REGISTRY_PIDS=()
}
