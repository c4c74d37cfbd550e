#!/usr/bin/env bash
# Make sure PostgreSQL answers on 127.0.0.1:5432 (or $DATASTORE_LITE_TEST_POSTGRES_URL).
# If the machine's own cluster is installed but stopped, start it. If there is none, the
# test fixture starts a throwaway cluster with initdb/pg_ctl; with CI=true a missing
# PostgreSQL is a failure there, never a silent skip.
set -u
if [ -n "${DATASTORE_LITE_TEST_POSTGRES_URL:-}" ]; then
  echo "postgres: using \$DATASTORE_LITE_TEST_POSTGRES_URL"
  exit 0
fi
ready() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h 127.0.0.1 -p 5432
  else
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
  fi
}
if ready; then
  echo "postgres: server on 127.0.0.1:5432"
  exit 0
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for version in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  done
  for _ in $(seq 1 30); do ready && { echo "postgres: started the local cluster"; exit 0; }; sleep 0.5; done
fi
echo "postgres: no server on 127.0.0.1:5432; the tests will start a throwaway cluster with initdb/pg_ctl"
exit 0
