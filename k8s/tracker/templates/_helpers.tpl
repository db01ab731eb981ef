{{/* The chart's name, or nameOverride. */}}
{{- define "tracker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: fullnameOverride, else release name (with the chart name unless it holds it). */}}
{{- define "tracker.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "tracker.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "tracker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the tracker pods. */}}
{{- define "tracker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tracker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: tracker
{{- end }}

{{/* Labels that select the bundled Redis pod. */}}
{{- define "tracker.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "tracker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "tracker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tracker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The port the tracker listens on: the one in config.listen. */}}
{{- define "tracker.port" -}}
{{- regexFind "[0-9]+$" (index .Values.config "listen") | atoi }}
{{- end }}

{{/* "true" when the tracker itself serves TLS (from tls:, or a tls-cert given in config:). */}}
{{- define "tracker.servesTls" -}}
{{- if or .Values.tls.enabled (index .Values.config "tls-cert") }}true{{ end }}
{{- end }}

{{/* HTTP or HTTPS: what the tracker port speaks. */}}
{{- define "tracker.scheme" -}}
{{- ternary "HTTPS" "HTTP" (eq (include "tracker.servesTls" .) "true") }}
{{- end }}

{{/* Where the chart mounts what it gives the tracker. */}}
{{- define "tracker.tlsDir" -}}/etc/tracker/tls{{- end }}
{{- define "tracker.geoipDir" -}}/var/lib/geoip{{- end }}
{{- define "tracker.redisPasswordFile" -}}/etc/tracker/redis/password{{- end }}

{{/* "true" when the replicas share swarms through a Redis. */}}
{{- define "tracker.redisEnabled" -}}
{{- $external := .Values.redis.external }}
{{- if or .Values.redis.bundled.enabled $external.url $external.urlSecret.name (index .Values.config "redis-url") }}true{{ end }}
{{- end }}

{{/* The bundled Redis's URL. */}}
{{- define "tracker.bundledRedisUrl" -}}
redis://{{ include "tracker.fullname" . }}-redis:6379
{{- end }}

{{/*
The tracker's settings as given to it: config: with null keys left out and the keys the chart
manages (TLS, GeoIP, Redis) set from their sections.
*/}}
{{- define "tracker.effectiveConfig" -}}
{{- $config := dict }}
{{- range $key, $value := .Values.config }}
{{- if not (kindIs "invalid" $value) }}
{{- $_ := set $config $key $value }}
{{- end }}
{{- end }}
{{- if .Values.tls.enabled }}
{{- $_ := set $config "tls-cert" (printf "%s/tls.crt" (include "tracker.tlsDir" .)) }}
{{- $_ := set $config "tls-key" (printf "%s/tls.key" (include "tracker.tlsDir" .)) }}
{{- end }}
{{- if ne .Values.geoip.mode "none" }}
{{- with .Values.geoip.asnFile }}
{{- $_ := set $config "geoip-asn" (printf "%s/%s" (include "tracker.geoipDir" $) .) }}
{{- end }}
{{- with .Values.geoip.locationFile }}
{{- $_ := set $config "geoip-location" (printf "%s/%s" (include "tracker.geoipDir" $) .) }}
{{- end }}
{{- end }}
{{- if .Values.redis.bundled.enabled }}
{{- $_ := set $config "redis-url" (include "tracker.bundledRedisUrl" .) }}
{{- else if .Values.redis.external.url }}
{{- $_ := set $config "redis-url" .Values.redis.external.url }}
{{- end }}
{{- if .Values.redis.external.passwordSecret.name }}
{{- $_ := set $config "redis-password-file" (include "tracker.redisPasswordFile" .) }}
{{- end }}
{{- if .Values.redis.external.cluster }}
{{- $_ := set $config "redis-cluster" true }}
{{- end }}
{{- toJson $config }}
{{- end }}

{{/* The effective settings as a TOML document (JSON scalars and arrays are valid TOML values). */}}
{{- define "tracker.configToml" -}}
{{- $config := include "tracker.effectiveConfig" . | fromJson }}
{{- range $key := keys $config | sortAlpha }}
{{ $key }} = {{ index $config $key | toJson }}
{{- end }}
{{- end }}

{{/* Fails with a message that says what to set when values contradict each other. */}}
{{- define "tracker.validate" -}}
{{- $config := .Values.config }}
{{- $redis := include "tracker.redisEnabled" . }}
{{- if and (not $redis) (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1)) }}
{{- fail (printf "replicaCount %d / autoscaling.enabled %t: more than one tracker replica needs Redis to share swarms; set redis.external.url (or redis.external.urlSecret) to your Redis, or redis.bundled.enabled=true for a try" (int .Values.replicaCount) .Values.autoscaling.enabled) }}
{{- end }}
{{- if and .Values.redis.bundled.enabled (or .Values.redis.external.url .Values.redis.external.urlSecret.name) }}
{{- fail "redis.bundled.enabled and redis.external are both set: choose one" }}
{{- end }}
{{- if and .Values.redis.external.url .Values.redis.external.urlSecret.name }}
{{- fail "redis.external.url and redis.external.urlSecret are both set: choose one" }}
{{- end }}
{{- $drain := add (int .Values.preStopSleepSeconds) (int (index $config "shutdown-timeout")) }}
{{- if ge (int $drain) (int .Values.terminationGracePeriodSeconds) }}
{{- fail (printf "preStopSleepSeconds (%d) + config.shutdown-timeout (%d) = %d s must be below terminationGracePeriodSeconds (%d), or Kubernetes kills the tracker before its WebSockets drain; raise terminationGracePeriodSeconds or lower config.shutdown-timeout" (int .Values.preStopSleepSeconds) (int (index $config "shutdown-timeout")) (int $drain) (int .Values.terminationGracePeriodSeconds)) }}
{{- end }}
{{- if and (or .Values.ingress.enabled .Values.gateway.enabled) (empty (index $config "trusted-proxies")) }}
{{- fail "ingress.enabled or gateway.enabled: set config.trusted-proxies to the networks of the ingress controller or gateway pods, or the tracker sees every viewer at the proxy's address and cannot match peers by network" }}
{{- end }}
{{- if .Values.ingress.enabled }}
{{- $ping := int (index $config "ping-interval") }}
{{- $idle := ternary (int (index $config "peer-timeout")) (mul 2 $ping) (eq $ping 0) }}
{{- if le (int .Values.ingress.websocketTimeoutSeconds) (int $idle) }}
{{- fail (printf "ingress.websocketTimeoutSeconds (%d) must exceed %d s (twice config.ping-interval, or config.peer-timeout when pings are off), or the ingress cuts idle WebSockets" (int .Values.ingress.websocketTimeoutSeconds) (int $idle)) }}
{{- end }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled: set tls.secretName to a kubernetes.io/tls Secret" }}
{{- end }}
{{- if and (eq .Values.geoip.mode "existing") (not .Values.geoip.existing.name) }}
{{- fail "geoip.mode=existing: set geoip.existing.name (and geoip.existing.kind) to the Secret, ConfigMap or PVC holding the databases" }}
{{- end }}
{{- if and (eq .Values.geoip.mode "updater") (not .Values.geoip.updater.secretName) }}
{{- fail "geoip.mode=updater: set geoip.updater.secretName to a Secret with the MaxMind account id and license key" }}
{{- end }}
{{- with index $config "max-connections" }}
{{- $admitted := sub (int $.Values.openFiles) (max 32 (div (int $.Values.openFiles) 32)) }}
{{- if gt (int .) (int $admitted) }}
{{- fail (printf "config.max-connections (%d) needs more open files than openFiles (%d) allows (%d connections once 1/32 is kept back); raise openFiles (and the nodes' container runtime limit) or lower config.max-connections" (int .) (int $.Values.openFiles) (int $admitted)) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The geoipupdate container (name excluded), given (dict "root" $ "keepUpdating" bool): once as an
init container, then as the updater that checks every frequencyHours.
*/}}
{{- define "tracker.geoipupdateContainer" -}}
{{- $root := .root }}
{{- $updater := $root.Values.geoip.updater -}}
image: "{{ $updater.image.repository }}:{{ $updater.image.tag }}"
imagePullPolicy: {{ $updater.image.pullPolicy }}
env:
  - name: GEOIPUPDATE_ACCOUNT_ID
    valueFrom:
      secretKeyRef:
        name: {{ $updater.secretName }}
        key: {{ $updater.accountIdKey }}
  - name: GEOIPUPDATE_LICENSE_KEY
    valueFrom:
      secretKeyRef:
        name: {{ $updater.secretName }}
        key: {{ $updater.licenseKeyKey }}
  - name: GEOIPUPDATE_EDITION_IDS
    value: {{ $updater.editionIds | quote }}
  - name: GEOIPUPDATE_DB_DIR
    value: {{ include "tracker.geoipDir" $root }}
  {{- if .keepUpdating }}
  - name: GEOIPUPDATE_FREQUENCY
    value: {{ $updater.frequencyHours | quote }}
  {{- end }}
resources:
  {{- toYaml $updater.resources | nindent 2 }}
securityContext:
  {{- toYaml $root.Values.securityContext | nindent 2 }}
volumeMounts:
  - name: geoip
    mountPath: {{ include "tracker.geoipDir" $root }}
  - name: geoip-tmp
    mountPath: /tmp
{{- end }}
