{{/* Chart name, or nameOverride. */}}
{{- define "arnsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: fullnameOverride, else the release name when it already
contains the chart name, else "<release>-<chart>". Also the leader-election Lease name.
*/}}
{{- define "arnsync.fullname" -}}
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

{{- define "arnsync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "arnsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "arnsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "arnsync.labels" -}}
helm.sh/chart: {{ include "arnsync.chart" . }}
{{ include "arnsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: arnsync
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "arnsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "arnsync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "arnsync.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
RBAC rules for the namespaced resources the operator reads and writes; shared by the
ClusterRole (all namespaces) and the Role (watchNamespace mode). The argument is the root
context plus "cluster" (bool): cluster-scoped mode adds ClusterSecretStores and
ClusterExternalSecrets (which write ExternalSecrets in the namespaces they select).
*/}}
{{- define "arnsync.rules" -}}
{{- $cluster := .cluster }}
- apiGroups: ["arnsync.io"]
  resources:
    - externalsecrets
    - secretstores
    {{- if $cluster }}
    - clustersecretstores
    - clusterexternalsecrets
    {{- end }}
  verbs: ["get", "list", "watch"]
- apiGroups: ["arnsync.io"]
  resources:
    - externalsecrets/status
    - secretstores/status
    {{- if $cluster }}
    - clustersecretstores/status
    - clusterexternalsecrets/status
    {{- end }}
  verbs: ["get", "patch", "update"]
# Secrets created with creationPolicy Owner, and the ExternalSecrets of a ClusterExternalSecret,
# carry an ownerReference with blockOwnerDeletion; clusters that enforce owner-reference
# permissions require this.
- apiGroups: ["arnsync.io"]
  resources:
    - externalsecrets/finalizers
    {{- if $cluster }}
    - clusterexternalsecrets/finalizers
    {{- end }}
  verbs: ["update"]
{{- if $cluster }}
# ClusterExternalSecrets create, update and delete the ExternalSecrets they own.
- apiGroups: ["arnsync.io"]
  resources: ["externalsecrets"]
  verbs: ["create", "patch", "delete"]
{{- end }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# target.template.templateFrom reads templates from ConfigMaps.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
# provider.aws.auth.jwt: a token for the store's ServiceAccount, exchanged with STS (its
# annotations are cached, and the cache follows changes through a metadata watch).
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["serviceaccounts/token"]
  verbs: ["create"]
{{- if $cluster }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end }}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["get", "list", "watch", "patch"]
{{- if .root.Values.rbac.argoRollouts }}
- apiGroups: ["argoproj.io"]
  resources: ["rollouts"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end }}
