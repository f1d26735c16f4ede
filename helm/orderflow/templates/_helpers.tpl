{{/* The release's base name, at most 63 characters. */}}
{{- define "orderflow.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The name of one process's objects: "orderflow.name" (dict "root" $ "name" "ingress"). */}}
{{- define "orderflow.name" -}}
{{- printf "%s-%s" (include "orderflow.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "orderflow.labels" -}}
app.kubernetes.io/name: orderflow
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "orderflow.selector" -}}
app.kubernetes.io/name: orderflow
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "orderflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "orderflow.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "orderflow.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Whether the in-chart development registry runs. */}}
{{- define "orderflow.devRegistry" -}}
{{- $r := index .Values.services "schema-registry" | default dict -}}
{{- if $r.enabled -}}true{{- end -}}
{{- end -}}

{{/*
The ORDERFLOW_REGISTRY__URL entry: registry.url, an existing Secret, or the
in-chart development registry.
*/}}
{{- define "orderflow.registryEnv" -}}
- name: ORDERFLOW_REGISTRY__URL
{{- if .Values.registry.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.registry.existingSecret }}
      key: {{ .Values.registry.existingSecretKey }}
{{- else if .Values.registry.url }}
  value: {{ .Values.registry.url | quote }}
{{- else if include "orderflow.devRegistry" . }}
  value: {{ printf "http://%s:%v" (include "orderflow.name" (dict "root" . "name" "schema-registry")) (index .Values.services "schema-registry").port | quote }}
{{- else }}
{{- fail "registry.url (or registry.existingSecret) is required: the URL of a Confluent-compatible schema registry (or enable services.schema-registry for development)" }}
{{- end }}
{{- end -}}

{{/*
A process's part in crypto-shredding (docs/privacy.md): "keeper" (the user
service keeps the data keys and serves them on its port), "client" (the
order service seals with them, the projector opens with them), or "".
*/}}
{{- define "orderflow.keyRole" -}}
{{- if eq . "user-service" }}keeper{{ else if has . (list "order-service" "projector") }}client{{ end }}
{{- end -}}

{{/*
The environment of one process: "orderflow.env" (dict "root" $ "name" NAME "svc" SERVICE).
Only settings the binary has: it refuses unknown ORDERFLOW_* names.
*/}}
{{- define "orderflow.env" -}}
{{- $root := .root -}}
{{- $svc := .svc -}}
{{- $kind := $svc.kind -}}
- name: ORDERFLOW_ENVIRONMENT
  value: {{ $root.Values.environment | quote }}
- name: ORDERFLOW_LOG_FORMAT
  value: {{ $root.Values.logFormat | quote }}
- name: ORDERFLOW_HTTP__ADDR
  value: {{ printf "0.0.0.0:%v" $svc.port | quote }}
{{- if $svc.opsPort }}
- name: ORDERFLOW_OPS__ADDR
  value: {{ printf "0.0.0.0:%v" $svc.opsPort | quote }}
{{- end }}
- name: ORDERFLOW_DATABASE__URL
{{- if $svc.database.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ $svc.database.existingSecret }}
      key: {{ $svc.database.existingSecretKey | default "url" }}
{{- else if $svc.database.url }}
  value: {{ $svc.database.url | quote }}
{{- else }}
{{- fail (printf "services.%s.database.url (or services.%s.database.existingSecret) is required: the postgres:// URL of its %s database" .name .name $svc.database.name) }}
{{- end }}
- name: ORDERFLOW_DATABASE__MAX_CONNECTIONS
  value: {{ $svc.database.maxConnections | quote }}
{{- if ne $kind "registry" }}
- name: ORDERFLOW_KAFKA__BROKERS
  value: {{ $root.Values.kafka.bootstrapServers | quote }}
- name: ORDERFLOW_KAFKA__REPLICATION_FACTOR
  value: {{ $root.Values.kafka.replicationFactor | quote }}
- name: ORDERFLOW_KAFKA__MIN_INSYNC_REPLICAS
  value: {{ $root.Values.kafka.minInsyncReplicas | quote }}
- name: ORDERFLOW_KAFKA__PARTITIONS
  value: {{ $root.Values.kafka.partitions | quote }}
{{- range $k, $v := $root.Values.kafka.properties }}
- name: {{ printf "ORDERFLOW_KAFKA__PROPERTIES__%s" ($k | replace "." "_" | replace "-" "_" | upper) }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- range $k, $ref := $root.Values.kafka.secretProperties }}
- name: {{ printf "ORDERFLOW_KAFKA__PROPERTIES__%s" ($k | replace "." "_" | replace "-" "_" | upper) }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.secretName }}
      key: {{ $ref.key }}
{{- end }}
{{ include "orderflow.registryEnv" $root }}
{{- with $root.Values.tracing.otlpEndpoint }}
- name: ORDERFLOW_TELEMETRY__OTLP_ENDPOINT
  value: {{ . | quote }}
- name: ORDERFLOW_TELEMETRY__SAMPLE_RATIO
  value: {{ $root.Values.tracing.sampleRatio | toString | quote }}
{{- end }}
{{- end }}
{{- if eq $kind "ingress" }}
- name: ORDERFLOW_CONSOLE__DIR
  value: "/usr/share/orderflow/console"
{{- /* The console's bus page probes every other process of the release. */}}
{{- $probes := list }}
{{- range $other, $o := $root.Values.services }}
{{- if and $o.enabled (ne $o.kind "ingress") }}
{{- $url := printf "http://%s:%v" (include "orderflow.name" (dict "root" $root "name" $other)) $o.port }}
{{- $probes = append $probes (printf "{name=%q,url=%q}" $other $url) }}
{{- end }}
{{- end }}
- name: ORDERFLOW_MONITOR__PROCESSES
  value: {{ printf "[%s]" (join "," $probes) | quote }}
- name: ORDERFLOW_JWT__SECRET
  valueFrom:
    secretKeyRef:
      name: {{ required "jwt.existingSecret is required: the Secret holding the ingress's JWT signing key (32 bytes at least)" $root.Values.jwt.existingSecret }}
      key: {{ $root.Values.jwt.existingSecretKey }}
{{- end }}
{{- $keyRole := include "orderflow.keyRole" .name }}
{{- if $keyRole }}
{{- $keySecret := required "keys.existingSecret is required: the Secret holding the key-service token and the key-encryption keys of personal data (docs/privacy.md)" $root.Values.keys.existingSecret }}
- name: ORDERFLOW_KEYS__TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $keySecret }}
      key: {{ $root.Values.keys.tokenKey }}
{{- if eq $keyRole "keeper" }}
- name: ORDERFLOW_KEYS__KEKS
  valueFrom:
    secretKeyRef:
      name: {{ $keySecret }}
      key: {{ $root.Values.keys.keksKey }}
{{- else }}
- name: ORDERFLOW_KEYS__URL
  value: {{ printf "http://%s:%v" (include "orderflow.name" (dict "root" $root "name" "user-service")) (index $root.Values.services "user-service").port | quote }}
{{- end }}
- name: ORDERFLOW_KEYS__CACHE_SECS
  value: {{ $root.Values.keys.cacheSeconds | quote }}
{{- end }}
{{- $fromValues := list "ORDERFLOW_KEYS__TOKEN" "ORDERFLOW_KEYS__KEKS" "ORDERFLOW_KEYS__URL" "ORDERFLOW_KEYS__CACHE_SECS" "ORDERFLOW_ENVIRONMENT" "ORDERFLOW_LOG_FORMAT" "ORDERFLOW_HTTP__ADDR" "ORDERFLOW_OPS__ADDR" "ORDERFLOW_DATABASE__URL" "ORDERFLOW_DATABASE__MAX_CONNECTIONS" "ORDERFLOW_KAFKA__BROKERS" "ORDERFLOW_KAFKA__REPLICATION_FACTOR" "ORDERFLOW_KAFKA__MIN_INSYNC_REPLICAS" "ORDERFLOW_KAFKA__PARTITIONS" "ORDERFLOW_REGISTRY__URL" "ORDERFLOW_JWT__SECRET" "ORDERFLOW_TELEMETRY__OTLP_ENDPOINT" "ORDERFLOW_TELEMETRY__SAMPLE_RATIO" "ORDERFLOW_CONSOLE__DIR" "ORDERFLOW_MONITOR__PROCESSES" }}
{{- range $k, $v := $svc.env }}
{{- if or (has $k $fromValues) (hasPrefix "ORDERFLOW_KAFKA__PROPERTIES__" $k) }}
{{- fail (printf "services.%s.env.%s: the chart sets it from its own value (see values.yaml); set that instead" $.name $k) }}
{{- end }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end -}}
