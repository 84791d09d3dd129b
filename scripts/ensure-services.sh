#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672) answer; start them if not.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 120); do
    port_open "$port" && return 0
    sleep 0.5
  done
  echo "$name did not come up on port $port" >&2
  return 1
}

if ! port_open 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  wait_port 5432 PostgreSQL
fi
until pg_isready -q -h 127.0.0.1 -p 5432; do sleep 0.5; done

if ! port_open 5672; then
  if rabbitmqctl -q ping >/dev/null 2>&1 || rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    echo "starting the RabbitMQ application"   # node up, app stopped (rabbitmqctl stop_app)
    rabbitmqctl -q start_app
  else
    echo "starting RabbitMQ"
    rabbitmq-server -detached
  fi
  wait_port 5672 RabbitMQ
  rabbitmqctl -q await_startup >/dev/null 2>&1 || true
fi
echo "PostgreSQL and RabbitMQ are up"
