{{/* The release's name, or release-chart when they differ, cut to 63 characters. */}}
{{- define "replicator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "replicator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "replicator.labels" -}}
{{ include "replicator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "replicator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "replicator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: name the existing service account to use when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "replicator.configMapName" -}}
{{- default (include "replicator.fullname" .) .Values.existingConfigMap -}}
{{- end -}}

{{/*
The state path of a file:// state location, or "" for a bucket: it decides whether
the workers can share it. Only known for an inline config.
*/}}
{{- define "replicator.fileStatePath" -}}
{{- if and .Values.config (not .Values.existingConfigMap) -}}
{{- $cfg := fromYaml .Values.config -}}
{{- if hasKey $cfg "Error" -}}
{{- fail (printf "config: not valid YAML: %s" (get $cfg "Error")) -}}
{{- end -}}
{{- $state := toString (default "" (get $cfg "state")) -}}
{{- if hasPrefix "file://" $state -}}
{{- trimPrefix "file://" $state -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Refuses settings that would render a worker that cannot work, saying how to fix them. */}}
{{- define "replicator.validate" -}}
{{- if not .Values.temporal.address -}}
{{- fail "temporal.address: set the Temporal frontend's host:port (e.g. temporal-frontend.temporal:7233, or <namespace>.<account>.tmprl.cloud:7233 for Temporal Cloud)" -}}
{{- end -}}
{{- if and (not .Values.config) (not .Values.existingConfigMap) -}}
{{- fail "config: give the replicator.yaml the workers run (config: |- ...), or existingConfigMap: the name of a ConfigMap holding it under the key replicator.yaml" -}}
{{- end -}}
{{- if and .Values.config .Values.existingConfigMap -}}
{{- fail "config and existingConfigMap are both set: keep one, the chart would ignore config" -}}
{{- end -}}
{{- if and .Values.temporal.tls.enabled (not .Values.temporal.tls.secretName) -}}
{{- fail "temporal.tls.secretName: name the Secret with tls.crt and tls.key (and ca.crt when temporal.tls.hasCA) when temporal.tls.enabled" -}}
{{- end -}}
{{- if le (int .Values.terminationGraceExtraSeconds) 0 -}}
{{- fail "terminationGraceExtraSeconds: must be at least 1, so that the pod's termination grace outlasts --stop-timeout and a worker handing over its activities is not killed" -}}
{{- end -}}
{{- $path := include "replicator.fileStatePath" . -}}
{{- $several := or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) -}}
{{- if and $path $several (not .Values.stateVolume.claimName) -}}
{{- fail (printf "config: state is file://%s, which each pod would keep on its own disk while several workers share one cluster (replicaCount > 1 or autoscaling); use a bucket URL (s3://, gs://, azblob://) or mount a ReadWriteMany volume there with stateVolume.claimName" $path) -}}
{{- end -}}
{{- if and .Values.stateVolume.claimName (not $path) -}}
{{- fail "stateVolume.claimName: only used for a file:// state location in an inline config; remove it or make config's state a file:// path" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicaCount) (int .Values.autoscaling.maxReplicaCount)) -}}
{{- fail "autoscaling: minReplicaCount is larger than maxReplicaCount" -}}
{{- end -}}
{{- end -}}
