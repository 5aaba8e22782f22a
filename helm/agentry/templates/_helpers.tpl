{{/*
helm/agentry/templates/_helpers.tpl - names, labels and the rules between values that the
schema cannot say (agentry.validate, included by every manifest so that a bad combination fails
the render whichever file comes first).
*/}}

{{- define "agentry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "agentry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Names of the parts; 63 characters at most, as Services need. */}}
{{- define "agentry.hub.fullname" -}}
{{- printf "%s-hub" (include "agentry.fullname" . | trunc 59 | trimSuffix "-") -}}
{{- end -}}
{{- define "agentry.node.fullname" -}}
{{- printf "%s-node" (include "agentry.fullname" . | trunc 58 | trimSuffix "-") -}}
{{- end -}}

{{- define "agentry.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "agentry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "agentry.labels" -}}
helm.sh/chart: {{ include "agentry.chart" . }}
{{ include "agentry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agentry
{{- end -}}

{{/* Labels of one component: include "agentry.componentLabels" (list . "hub"). */}}
{{- define "agentry.componentLabels" -}}
{{ include "agentry.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}
{{- define "agentry.componentSelector" -}}
{{ include "agentry.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "agentry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "agentry.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "agentry.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The hub's gRPC address inside the cluster: its Service, which reaches only the active hub
(the only Ready one). Nodes, the preStop drain and the standby's advertised address use it, and
the hub's certificate names it. */}}
{{- define "agentry.hub.host" -}}
{{- printf "%s.%s.svc.%s" (include "agentry.hub.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}
{{- define "agentry.hub.address" -}}
{{- printf "%s:%d" (include "agentry.hub.host" .) (int .Values.hub.service.port) -}}
{{- end -}}

{{- define "agentry.tls.enabled" -}}
{{- if ne .Values.tls.mode "none" -}}true{{- end -}}
{{- end -}}

{{/* Each node pod has a certificate of its own: cert-manager's CSI driver. Otherwise every pod
would present the one node certificate, and the hub refuses a second live node with its id. */}}
{{- define "agentry.node.perPodIdentity" -}}
{{- if or (eq .Values.tls.mode "none") (and (eq .Values.tls.mode "certManager") .Values.tls.certManager.csiDriver) -}}true{{- end -}}
{{- end -}}

{{- define "agentry.hub.policy.enabled" -}}
{{- if or .Values.hub.policy .Values.hub.existingPolicyConfigMap -}}true{{- end -}}
{{- end -}}
{{- define "agentry.node.policy.enabled" -}}
{{- if or .Values.nodes.policy .Values.nodes.existingPolicyConfigMap -}}true{{- end -}}
{{- end -}}

{{/* The rules between values, as one line each that says what to change. */}}
{{- define "agentry.validate" -}}
{{- $v := .Values -}}
{{- if gt (int $v.hub.replicas) 1 -}}
{{- if ne $v.store.type "postgres" -}}
{{- fail (printf "hub.replicas is %d, but a standby hub needs store.type postgres (a SQLite file is one hub's: set hub.replicas 1, or use PostgreSQL and etcd)" (int $v.hub.replicas)) -}}
{{- end -}}
{{- if not $v.etcd.endpoints -}}
{{- fail (printf "hub.replicas is %d, but hubs elect the active one through etcd: set etcd.endpoints" (int $v.hub.replicas)) -}}
{{- end -}}
{{- end -}}
{{- if eq $v.store.type "postgres" -}}
{{- if not (or $v.store.postgres.url (and $v.store.postgres.existingSecret $v.store.postgres.urlKey)) -}}
{{- fail "store.type is postgres: set store.postgres.url (or store.postgres.existingSecret with store.postgres.urlKey)" -}}
{{- end -}}
{{- if and $v.store.postgres.url $v.store.postgres.urlKey -}}
{{- fail "store.postgres: set url or urlKey, not both" -}}
{{- end -}}
{{- end -}}
{{- if and (eq $v.tls.mode "secret") (not $v.tls.existingSecret) -}}
{{- fail "tls.mode is secret: set tls.existingSecret (a Secret with ca.crt, hub.crt, hub.key, node.crt, node.key)" -}}
{{- end -}}
{{- if and (eq $v.tls.mode "certManager") (not $v.tls.certManager.issuerRef.name) -}}
{{- fail "tls.mode is certManager: set tls.certManager.issuerRef.name" -}}
{{- end -}}
{{- if and (not (include "agentry.node.perPodIdentity" .)) (gt (int $v.nodes.replicas) 1) -}}
{{- fail (printf "nodes.replicas is %d, but every node pod would present the same node certificate and the hub accepts one live node per id: use tls.mode certManager with tls.certManager.csiDriver (a certificate per pod), or nodes.replicas 1" (int $v.nodes.replicas)) -}}
{{- end -}}
{{- if and (include "agentry.hub.policy.enabled" .) (not (include "agentry.tls.enabled" .)) -}}
{{- fail "hub.policy needs TLS (the hub refuses --policy without it): set tls.mode" -}}
{{- end -}}
{{- if and $v.dashboard.enabled (include "agentry.tls.enabled" .) (not (include "agentry.hub.policy.enabled" .)) -}}
{{- fail "the dashboard with TLS signs users in with the tokens of the hub's policy: set hub.policy (at least 'tokens: []') or dashboard.enabled false" -}}
{{- end -}}
{{- if and $v.hub.policy $v.hub.existingPolicyConfigMap -}}
{{- fail "set hub.policy or hub.existingPolicyConfigMap, not both" -}}
{{- end -}}
{{- if and $v.nodes.policy $v.nodes.existingPolicyConfigMap -}}
{{- fail "set nodes.policy or nodes.existingPolicyConfigMap, not both" -}}
{{- end -}}
{{- if and $v.dashboard.ingress.enabled (not $v.dashboard.enabled) -}}
{{- fail "dashboard.ingress.enabled needs dashboard.enabled" -}}
{{- end -}}
{{- if and $v.metrics.serviceMonitor.enabled (not $v.metrics.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" -}}
{{- end -}}
{{- end -}}

{{/* The hub's RBAC policy and the node's permission policy, as files in their ConfigMaps. */}}
{{- define "agentry.hub.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "agentry.hub.fullname" .)) .Values.hub.existingPolicyConfigMap -}}
{{- end -}}
{{- define "agentry.node.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "agentry.node.fullname" .)) .Values.nodes.existingPolicyConfigMap -}}
{{- end -}}

{{/* etcd flags, shared by hub and node; the Secret is mounted at /run/agentry/etcd. */}}
{{- define "agentry.etcd.args" -}}
{{- $e := .Values.etcd }}
- --etcd
- {{ join "," $e.endpoints | quote }}
- --etcd-prefix
- {{ $e.prefix | quote }}
- --lease-ttl
- {{ $e.leaseTTL | quote }}
{{- if $e.tls.existingSecret }}
- --etcd-ca
- /run/agentry/etcd/{{ $e.tls.caKey }}
{{- if $e.tls.certKey }}
- --etcd-cert
- /run/agentry/etcd/{{ $e.tls.certKey }}
- --etcd-key
- /run/agentry/etcd/{{ $e.tls.keyKey }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "agentry.etcd.volume" -}}
{{- if .Values.etcd.tls.existingSecret }}
- name: etcd-tls
  secret:
    secretName: {{ .Values.etcd.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end -}}
{{- define "agentry.etcd.volumeMount" -}}
{{- if .Values.etcd.tls.existingSecret }}
- name: etcd-tls
  mountPath: /run/agentry/etcd
  readOnly: true
{{- end }}
{{- end -}}

{{/* A gRPC health probe (grpc.health.v1, served on the plaintext health port). */}}
{{- define "agentry.probe" -}}
{{- $port := index . 0 -}}
{{- $service := index . 1 -}}
{{- $p := index . 2 -}}
grpc:
  port: {{ $port }}
  service: {{ $service | quote }}
{{ toYaml $p }}
{{- end -}}

{{/* nodes.labels as --labels takes them: k=v,... in key order. */}}
{{- define "agentry.node.labels" -}}
{{- $out := list -}}
{{- range $k := keys .Values.nodes.labels | sortAlpha -}}
{{- $out = append $out (printf "%s=%v" $k (index $.Values.nodes.labels $k)) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}
