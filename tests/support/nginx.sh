# SPDX-License-Identifier: Apache-2.0
# Sourced helper: a private nginx on 127.0.0.1 for the HTTP source's tests (HTTP, HTTPS with a
# CA made here, basic auth, redirects, statuses), and the project's fault server.
#
#   nginx_start WORK DOCROOT      -> NGINX_PID HTTP_PORT HTTPS_PORT CA_DIR (CA file with an odd name)
#                                    MTLS_PORT (HTTPS requiring a client certificate from the CA:
#                                    WORK/certs/client.{crt,key}, client-combined.pem; rogue-client.*)
#                                    HTUSER HTPASS, WORK/access.log (format below)
#   nginx_stop                    (also registered by the caller for exit)
#   fault_start WORK DOCROOT      -> FAULT_PID FAULT_PORT, log in WORK/fault.log
#   fault_stop
# Access log line: ADDR "REQUEST" STATUS BYTES host="HOST" range="RANGE" user="USER"
#   auth="AUTHORIZATION" ua="UA" xtest="X-Test" xsecret="X-Secret"
# Everything lives in WORK; nothing outside is touched. Only 127.0.0.1 is used.

# _free_port: a port the kernel considers free right now (small race until nginx binds it).
_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# _make_certs DIR: a private CA and a server certificate for localhost and 127.0.0.1, plus a
# second unrelated CA (untrusted tests), a client certificate, and an htpasswd file.
_make_certs() {
  local d=$1
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" \
    -days 3650 -subj "/CN=cdi-import test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$d/server.key" \
    -out "$d/server.csr" -subj "/CN=localhost" 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" > "$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -out "$d/server.crt" \
    -days 825 -extfile "$d/server.ext" 2>/dev/null
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$d/other-ca.key" \
    -out "$d/other-ca.crt" -days 3650 -subj "/CN=unrelated CA" 2>/dev/null
  # --cert-dir as a Kubernetes ConfigMap mount looks: an odd file name, dot entries, a non-PEM file
  mkdir -p "$d/certdir"
  cp "$d/ca.crt" "$d/certdir/My Private CA.pem.txt"
  echo "not a certificate" > "$d/certdir/README"
  mkdir -p "$d/certdir/..2026_data"
  echo garbage > "$d/certdir/.hidden"
  # client certificate for TLS client auth (signed by the test CA), and one from the unrelated CA
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$d/client.key" \
    -out "$d/client.csr" -subj "/CN=cdi-import-client" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=clientAuth" > "$d/client.ext"
  openssl x509 -req -in "$d/client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -out "$d/client.crt" \
    -days 825 -extfile "$d/client.ext" 2>/dev/null
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$d/rogue-client.key" \
    -out "$d/rogue-client.crt" -days 30 -subj "/CN=rogue-client" 2>/dev/null
  cat "$d/client.crt" "$d/client.key" > "$d/client-combined.pem"
  htpasswd -Bbn -C 5 "$HTUSER" "$HTPASS" > "$d/htpasswd" 2>/dev/null
}

nginx_start() {
  local work=$1 docroot=$2 try
  HTUSER=testuser
  HTPASS='s3cret pass:word'
  CA_DIR=$work/certs/certdir
  _make_certs "$work/certs"
  mkdir -p "$work/tmp"
  for try in 1 2 3 4 5; do
    HTTP_PORT=$(_free_port)
    HTTPS_PORT=$(_free_port)
    MTLS_PORT=$(_free_port)
    local user_line=""
    if [[ $(id -u) == 0 ]]; then user_line="user root root;"; fi
    cat > "$work/locations.conf" <<CONF
    root $docroot;
    default_type application/octet-stream;
    gzip off;
    location / { }
    location /auth/ { alias $docroot/; auth_basic "cdi-test"; auth_basic_user_file $work/certs/htpasswd; }
    location /redirect/ { rewrite ^/redirect/(.*)\$ /\$1 redirect; }
    location /moved/ { rewrite ^/moved/(.*)\$ /\$1 permanent; }
    location /redirect-auth/ { rewrite ^/redirect-auth/(.*)\$ /auth/\$1 redirect; }
    location ~ ^/cross-host/(.*)\$ { return 302 http://localhost:$HTTP_PORT/\$1; }
    location ~ ^/cross-port-auth/(.*)\$ { return 302 https://127.0.0.1:$HTTPS_PORT/auth/\$1; }
    location ~ ^/downgrade/(.*)\$ { return 302 http://127.0.0.1:$HTTP_PORT/\$1; }
    location = /loop-a { return 302 /loop-b; }
    location = /loop-b { return 301 /loop-a; }
    location = /status/400 { return 400; }
    location = /status/401 { return 401; }
    location = /status/403 { return 403; }
    location = /status/404 { return 404; }
    location = /status/410 { return 410; }
    location = /status/500 { return 500; }
    location = /status/503 { add_header Retry-After 1 always; return 503; }
    location /norange/ { alias $docroot/; max_ranges 0; }
    location /need-header/ { alias $docroot/; if (\$http_x_secret != "tok-123") { return 403; } }
CONF
    cat > "$work/nginx.conf" <<CONF
$user_line
worker_processes 1;
daemon off;
master_process on;
pid $work/nginx.pid;
error_log $work/error.log info;
events { worker_connections 128; }
http {
    client_body_temp_path $work/tmp/body;
    proxy_temp_path $work/tmp/proxy;
    fastcgi_temp_path $work/tmp/fastcgi;
    uwsgi_temp_path $work/tmp/uwsgi;
    scgi_temp_path $work/tmp/scgi;
    log_format t '\$remote_addr "\$request" \$status \$body_bytes_sent host="\$http_host" range="\$http_range" user="\$remote_user" auth="\$http_authorization" ua="\$http_user_agent" xtest="\$http_x_test" xsecret="\$http_x_secret"';
    access_log $work/access.log t;
    sendfile on;
    keepalive_timeout 10;
    server { listen 127.0.0.1:$HTTP_PORT; server_name localhost; include $work/locations.conf; }
    server { listen 127.0.0.1:$HTTPS_PORT ssl; server_name localhost;
             ssl_certificate $work/certs/server.crt; ssl_certificate_key $work/certs/server.key;
             include $work/locations.conf; }
    server { listen 127.0.0.1:$MTLS_PORT ssl; server_name localhost;
             ssl_certificate $work/certs/server.crt; ssl_certificate_key $work/certs/server.key;
             ssl_client_certificate $work/certs/ca.crt; ssl_verify_client on;
             include $work/locations.conf; }
}
CONF
    nginx -t -q -p "$work" -c "$work/nginx.conf" -e "$work/error.log" || return 1
    nginx -p "$work" -c "$work/nginx.conf" -e "$work/error.log" </dev/null >>"$work/nginx.out" 2>&1 &
    NGINX_PID=$!
    local i
    for i in $(seq 1 100); do
      if (echo > /dev/tcp/127.0.0.1/$HTTPS_PORT) 2>/dev/null && (echo > /dev/tcp/127.0.0.1/$HTTP_PORT) 2>/dev/null &&
         (echo > /dev/tcp/127.0.0.1/$MTLS_PORT) 2>/dev/null; then
        return 0
      fi
      kill -0 "$NGINX_PID" 2>/dev/null || break
      sleep 0.02
    done
    kill -TERM "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null
    grep -q "Address already in use" "$work/error.log" "$work/nginx.out" 2>/dev/null || { cat "$work/error.log" >&2; return 1; }
  done
  return 1
}

nginx_stop() {
  if [[ -n ${NGINX_PID:-} ]]; then
    kill -TERM "$NGINX_PID" 2>/dev/null
    wait "$NGINX_PID" 2>/dev/null
    NGINX_PID=
  fi
}

# proxy_start WORK [BASIC_AUTH_USER BASIC_AUTH_PASSWORD] -> PROXY_PID PROXY_PORT, WORK/proxy.log
# A real forward proxy (tinyproxy: absolute-URI GETs and CONNECT) on 127.0.0.1; the log names
# every request it relayed ("CONNECT 127.0.0.1:PORT" / "GET http://...").
proxy_start() {
  local work=$1 user=${2:-} pass=${3:-} i
  mkdir -p "$work"
  PROXY_PORT=$(_free_port)
  {
    echo "Port $PROXY_PORT"
    echo "Listen 127.0.0.1"
    echo "Timeout 30"
    echo "LogFile \"$work/proxy.log\""
    echo "LogLevel Info"
    echo "MaxClients 20"
    echo "Allow 127.0.0.1"
    echo "ConnectPort $HTTPS_PORT"
    echo "ConnectPort $MTLS_PORT"
    echo "DisableViaHeader Yes"
    if [[ -n $user ]]; then echo "BasicAuth $user $pass"; fi
    if [[ $(id -u) == 0 ]]; then echo "User root"; echo "Group root"; fi
  } > "$work/tinyproxy.conf"
  tinyproxy -d -c "$work/tinyproxy.conf" </dev/null >"$work/proxy.out" 2>&1 &
  PROXY_PID=$!
  for i in $(seq 1 100); do
    if (echo > /dev/tcp/127.0.0.1/$PROXY_PORT) 2>/dev/null; then return 0; fi
    kill -0 "$PROXY_PID" 2>/dev/null || break
    sleep 0.05
  done
  cat "$work/proxy.out" >&2
  return 1
}

proxy_stop() {
  if [[ -n ${PROXY_PID:-} ]]; then
    kill -TERM "$PROXY_PID" 2>/dev/null
    wait "$PROXY_PID" 2>/dev/null
    PROXY_PID=
  fi
}

fault_start() {
  local work=$1 docroot=$2 i
  rm -f "$work/fault.port"
  python3 "$(dirname "${BASH_SOURCE[0]}")/fault_server.py" "$docroot" --portfile "$work/fault.port" --lifetime 1800 \
    </dev/null >/dev/null 2>"$work/fault.log" &
  FAULT_PID=$!
  for i in $(seq 1 200); do
    if [[ -s $work/fault.port ]]; then
      FAULT_PORT=$(cat "$work/fault.port")
      return 0
    fi
    sleep 0.02
  done
  return 1
}

fault_stop() {
  if [[ -n ${FAULT_PID:-} ]]; then
    kill -TERM "$FAULT_PID" 2>/dev/null
    wait "$FAULT_PID" 2>/dev/null
    FAULT_PID=
  fi
}
