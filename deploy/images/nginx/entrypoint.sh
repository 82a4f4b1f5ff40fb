#!/bin/sh
# What the official nginx image does at start: each /etc/nginx/templates/X.template becomes
# /etc/nginx/conf.d/X, with only the variables matching NGINX_ENVSUBST_FILTER substituted.
set -eu
filter=${NGINX_ENVSUBST_FILTER:-}
vars=$(env | cut -d= -f1 | grep -E "${filter:-.}" | sed 's/^/${/; s/$/}/' | tr '\n' ' ')
for template in /etc/nginx/templates/*.template; do
  [ -e "$template" ] || continue
  out="/etc/nginx/conf.d/$(basename "$template" .template)"
  envsubst "$vars" <"$template" >"$out"
done
exec "$@"
