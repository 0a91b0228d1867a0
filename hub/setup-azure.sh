#!/usr/bin/env bash
# Prepare Azure for an aml-jupyterhub deployment and write what the hub needs
# into .env. Run it from a machine where the Azure CLI is logged in
# (az login); it is safe to run again: every step reuses what exists.
#
#   hub/setup-azure.sh --host hub.example.org --allowed-group "Data Science"
#
# See --help for the flags, and README.md ("Going to Azure") for the context.
set -Eeuo pipefail

PROG=setup-azure
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"

# Built-in roles the hub's identity gets, both on the workspace only.
# "AzureML Compute Operator" (id e503ece1-11d0-4e8e-8e2c-7a6c3bf38815) grants
# Microsoft.MachineLearningServices/workspaces/computes/* : create, start,
# stop, restart, delete compute instances. It does not grant reading the
# workspace itself, which azure-ai-ml does before every create (to learn the
# region), so "Reader" on the same scope adds workspaces/read and nothing that
# writes.
COMPUTE_ROLE="AzureML Compute Operator"
READ_ROLE="Reader"
# Microsoft Graph and its delegated permission User.Read ("Sign in and read
# user profile"), what a portal-made registration asks for by default.
GRAPH_APP_ID=00000003-0000-0000-c000-000000000000
USER_READ_ID=e1fe6dd8-ba31-4d61-89e7-88639da4683d
# A new identity takes a while to be visible to Azure RBAC.
RETRY_SECONDS="${SETUP_AZURE_RETRY_SECONDS:-10}"
RETRIES=6

usage() {
  cat <<EOF
Usage: hub/setup-azure.sh --host NAME [options]

Prepares Azure for aml-jupyterhub and writes the settings into .env (created
from .env.example if missing; other lines are kept; mode 600). Each step
reuses what exists, so running it again is safe. Needs the Azure CLI, logged in
(az login).

It makes or reuses:
  - a resource group and an Azure ML workspace (installs the az 'ml' extension
    if missing);
  - an Azure AD app registration for the login: redirect URI
    https://HOST/hub/oauth_callback, ID tokens, the 'groups' claim, a client
    secret (a new one only when .env has none), and its service principal;
  - the identity the hub uses for Azure ML, with the roles
    '$COMPUTE_ROLE' and '$READ_ROLE' on the workspace only.

Options:
  --host NAME             public DNS name of the hub (required), e.g. hub.example.org
  --resource-group NAME   resource group (default: AML_RESOURCE_GROUP from .env,
                          else rg-aml-jupyterhub)
  --location REGION       region for new resources (default: the resource
                          group's, else westeurope)
  --workspace NAME        Azure ML workspace (default: AML_WORKSPACE from .env,
                          else mlw-aml-jupyterhub)
  --subscription ID       subscription id or name (default: AML_SUBSCRIPTION_ID
                          from .env, else the CLI's current one: az account show)
  --app-name NAME         display name of the login app registration
                          (default: aml-jupyterhub-HOST)
  --identity KIND         how the hub authenticates to Azure ML:
                            managed  a user-assigned managed identity, for a hub
                                     on an Azure VM (default)
                            sp       a service principal with a secret
  --identity-name NAME    the managed identity (default: id-aml-jupyterhub) or
                          the service principal's app (default: APP_NAME-arm)
  --allowed-group GROUP   Azure AD group whose members may log in: object id or
                          display name; repeat or comma-separate for several
                          (default: keep AAD_ALLOWED_GROUPS from .env)
  --admin-group GROUP     group whose members are hub admins (same forms;
                          default: keep AAD_ADMIN_GROUPS from .env)
  --acme-email ADDRESS    e-mail for Let's Encrypt notices (ACME_EMAIL)
  --rotate-secrets        make new client secrets even when .env has them
  --env-file PATH         the file to write (default: .env at the repository root)
  --dry-run               print the az commands it would run; run and write nothing
  -h, --help              this help

Afterwards: make up
EOF
}

# ---- output -----------------------------------------------------------------

say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}
on_unexpected() {
  printf '%s: error: unexpected failure (line %s, exit %s). Run again with bash -x %s to see more.\n' \
    "$PROG" "$1" "$2" "$0" >&2
}
trap 'on_unexpected "$LINENO" "$?"' ERR

# CMDLINE: "az ARGS..." as it would be typed into a shell (no subshells: this
# runs for every command).
command_line() {
  local a safe='^[A-Za-z0-9_./:=@,+%-]+$' q="'\\''"
  CMDLINE=az
  for a in "$@"; do
    if [[ $a =~ $safe ]]; then
      CMDLINE+=" $a"
    else
      CMDLINE+=" '${a//\'/$q}'"
    fi
  done
}
say_command() {
  command_line "$@"
  say "  $CMDLINE"
}

# ---- arguments ----------------------------------------------------------------

HOST='' RG='' LOCATION='' WORKSPACE='' SUBSCRIPTION='' APP_NAME='' IDENTITY=managed IDENTITY_NAME=''
ACME_EMAIL='' ENV_FILE="$ROOT/.env" DRY_RUN=false ROTATE=false
ALLOWED_ARGS=() ADMIN_ARGS=()

while [ $# -gt 0 ]; do
  opt=$1
  case $opt in
    --*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue ;;
    -h|--help) usage; exit 0 ;;
    --dry-run) DRY_RUN=true; shift; continue ;;
    --rotate-secrets) ROTATE=true; shift; continue ;;
    --host|--resource-group|--location|--workspace|--subscription|--app-name|--identity|--identity-name\
    |--allowed-group|--admin-group|--acme-email|--env-file) ;;
    *) die "unknown option '$opt' (see --help)" ;;
  esac
  if [ $# -lt 2 ] || [ -z "$2" ]; then
    die "$opt needs a value (see --help)"
  fi
  case $opt in
    --host) HOST=$2 ;;
    --resource-group) RG=$2 ;;
    --location) LOCATION=$2 ;;
    --workspace) WORKSPACE=$2 ;;
    --subscription) SUBSCRIPTION=$2 ;;
    --app-name) APP_NAME=$2 ;;
    --identity) IDENTITY=$2 ;;
    --identity-name) IDENTITY_NAME=$2 ;;
    --allowed-group) ALLOWED_ARGS+=("$2") ;;
    --admin-group) ADMIN_ARGS+=("$2") ;;
    --acme-email) ACME_EMAIL=$2 ;;
    --env-file) ENV_FILE=$2 ;;
  esac
  shift 2
done

if [ -z "$HOST" ]; then
  die "--host is required: the hub's public DNS name, e.g. --host hub.example.org (see --help)"
fi
case $HOST in
  http://*|https://*) die "--host takes a DNS name, not a URL: use --host ${HOST#*://} (no scheme, no path)" ;;
esac
host_re='^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$'
if ! [[ $HOST =~ $host_re ]]; then
  die "--host '$HOST' is not a DNS name like hub.example.org (Azure AD and Let's Encrypt need a public name)"
fi
case $IDENTITY in
  managed|sp) ;;
  *) die "--identity must be 'managed' (a user-assigned managed identity, for a hub on an Azure VM) or 'sp' (a service principal with a secret), not '$IDENTITY'" ;;
esac

# ---- .env ---------------------------------------------------------------------

# The value of KEY in the env file ('' if absent); the last one wins, as in
# docker compose; one level of quotes is removed.
env_get() {
  local key=$1 line val=
  if [ ! -f "$ENV_FILE" ]; then
    return 0
  fi
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      "$key="*) val=${line#"$key="} ;;
    esac
  done < "$ENV_FILE"
  if [ ${#val} -ge 2 ]; then
    case $val in
      \'*\'|\"*\") val=${val:1:${#val}-2} ;;
    esac
  fi
  printf '%s' "$val"
}

# VALUE as docker compose reads it back unchanged: bare when it is made of
# plain characters (Azure ids and generated secrets are), single-quoted
# (no interpolation) otherwise.
env_quote() {
  local v=$1 plain='^[A-Za-z0-9_./:@,+=~-]*$'
  case $v in
    *$'\n'*|*$'\r'*) die "a value for $ENV_FILE contains a line break" ;;
  esac
  if [[ $v =~ $plain ]]; then
    printf '%s' "$v"
  elif [[ $v != *\'* ]]; then
    printf "'%s'" "$v"
  else
    die "a value for $ENV_FILE contains both special characters and a single quote; set it by hand"
  fi
}

ensure_env_file() {
  if [ -f "$ENV_FILE" ]; then
    chmod 600 "$ENV_FILE"
    return 0
  fi
  if [ ! -f "$ROOT/.env.example" ]; then
    die "$ROOT/.env.example is missing: run this script from a checkout of aml-jupyterhub"
  fi
  (umask 077 && cp "$ROOT/.env.example" "$ENV_FILE") \
    || die "cannot create $ENV_FILE: check that its directory exists and is writable"
  chmod 600 "$ENV_FILE"
  say "  created $ENV_FILE from .env.example"
}

# env_set KEY=VALUE...: each KEY's line is replaced where it stands (later
# duplicates dropped), missing keys are appended, every other line is kept.
# Only shell builtins see the values, so secrets never reach a command line.
env_set() {
  if $DRY_RUN; then
    return 0
  fi
  ensure_env_file
  local keys=() vals=() written=() kv v i line key found tmp
  for kv in "$@"; do
    keys+=("${kv%%=*}")
    v=$(env_quote "${kv#*=}") || exit 1
    vals+=("$v")
    written+=(0)
  done
  tmp=$(mktemp "$ENV_FILE.XXXXXX") || die "cannot write next to $ENV_FILE: check the directory's permissions"
  chmod 600 "$tmp"
  while IFS= read -r line || [ -n "$line" ]; do
    key=${line%%=*}
    found=-1
    if [ "$key" != "$line" ]; then
      for i in "${!keys[@]}"; do
        if [ "${keys[i]}" = "$key" ]; then
          found=$i
          break
        fi
      done
    fi
    if [ "$found" -lt 0 ]; then
      printf '%s\n' "$line"
    elif [ "${written[found]}" = 0 ]; then
      printf '%s=%s\n' "$key" "${vals[found]}"
      written[found]=1
    fi
  done < "$ENV_FILE" > "$tmp"
  for i in "${!keys[@]}"; do
    if [ "${written[i]}" = 0 ]; then
      printf '%s=%s\n' "${keys[i]}" "${vals[i]}" >> "$tmp"
    fi
  done
  mv -f "$tmp" "$ENV_FILE"
  chmod 600 "$ENV_FILE"
}

# ---- az -----------------------------------------------------------------------

AZ_OUT=
AZ_ERR=$(mktemp "${TMPDIR:-/tmp}/setup-azure.XXXXXX")
trap 'rm -f "$AZ_ERR"' EXIT

az_fail() {
  local hint=$1
  shift
  {
    command_line "$@"
    printf '%s: error: this failed: %s\n' "$PROG" "$CMDLINE"
    grep -v -E '^(WARNING|DEBUG|INFO)' "$AZ_ERR" | tail -n 8 | sed -e 's/^/    /'
    printf '%s: what to do: %s\n' "$PROG" "$hint"
  } >&2
  exit 1
}

# az_read ARGS...: a read-only az command, its output in AZ_OUT. Returns 0
# when the thing exists, 3 when it does not (az's exit code for "not found",
# or its message); any other failure ends the script. In a dry run it prints
# the command and answers "not found", so the plan shows the create path.
az_read() {
  AZ_OUT=
  if $DRY_RUN; then
    say_command "$@"
    return 3
  fi
  local rc=0
  AZ_OUT=$(az "$@" 2>"$AZ_ERR") || rc=$?
  if [ "$rc" -eq 0 ]; then
    return 0
  fi
  if [ "$rc" -eq 3 ] || grep -q -i -E 'not found|ResourceNotFound|does not exist|could not be found|not installed|no group matches' "$AZ_ERR"; then
    AZ_OUT=
    return 3
  fi
  az_fail "check the message above; if your login expired, run az login and run this again" "$@"
}

# az_do HINT ARGS...: a command that changes something; it is printed first.
# In a dry run only printed; AZ_OUT is then $DRY (a placeholder) if set.
az_do() {
  local hint=$1
  shift
  say_command "$@"
  if $DRY_RUN; then
    AZ_OUT=${DRY:-}
    return 0
  fi
  local rc=0
  AZ_OUT=$(az "$@" 2>"$AZ_ERR") || rc=$?
  if [ "$rc" -ne 0 ]; then
    az_fail "$hint" "$@"
  fi
}

count_lines() {
  local n=0 line
  while IFS= read -r line; do
    if [ -n "$line" ]; then n=$((n + 1)); fi
  done <<< "$1"
  printf '%s' "$n"
}

contains_line() {
  local want=$1 line
  while IFS= read -r line; do
    if [ "$line" = "$want" ]; then return 0; fi
  done <<< "$2"
  return 1
}

# ---- steps --------------------------------------------------------------------

RG=${RG:-$(env_get AML_RESOURCE_GROUP)}
RG=${RG:-rg-aml-jupyterhub}
WORKSPACE=${WORKSPACE:-$(env_get AML_WORKSPACE)}
WORKSPACE=${WORKSPACE:-mlw-aml-jupyterhub}
SUBSCRIPTION=${SUBSCRIPTION:-$(env_get AML_SUBSCRIPTION_ID)}
APP_NAME=${APP_NAME:-aml-jupyterhub-$HOST}
if [ -z "$IDENTITY_NAME" ]; then
  if [ "$IDENTITY" = managed ]; then IDENTITY_NAME=id-aml-jupyterhub; else IDENTITY_NAME=$APP_NAME-arm; fi
fi
REDIRECT_URI="https://$HOST/hub/oauth_callback"
ws_re='^[A-Za-z0-9][A-Za-z0-9_-]{2,32}$'
if ! [[ $WORKSPACE =~ $ws_re ]]; then
  die "workspace name '$WORKSPACE' is not valid for Azure ML: 3-33 letters, digits, '-' or '_', starting with a letter or digit"
fi

if $DRY_RUN; then
  say "Dry run: these are the az commands a first run would make (existing resources"
  say "are looked up first and reused). Nothing is run and nothing is written."
elif ! command -v az >/dev/null 2>&1; then
  die "the Azure CLI (az) is not installed: install it (https://learn.microsoft.com/cli/azure/install-azure-cli), run az login, then run this again"
fi

step "Azure login"
SUB_ARGS=()
if [ -n "$SUBSCRIPTION" ]; then SUB_ARGS=(--subscription "$SUBSCRIPTION"); fi
ACCOUNT_QUERY=(account show ${SUB_ARGS[@]+"${SUB_ARGS[@]}"} --query "[id, tenantId, user.name]" -o tsv)
if $DRY_RUN; then
  say_command "${ACCOUNT_QUERY[@]}"
  SUB_ID=${SUBSCRIPTION:-<subscription-id>}
  TENANT_ID="<tenant-id>"
else
  rc=0
  AZ_OUT=$(az "${ACCOUNT_QUERY[@]}" 2>"$AZ_ERR") || rc=$?
  SUB_ID='' TENANT_ID='' ACCOUNT_USER=''
  { read -r SUB_ID && read -r TENANT_ID && read -r ACCOUNT_USER; } <<< "$AZ_OUT" || true
  if [ "$rc" -ne 0 ] || [ -z "$SUB_ID" ]; then
    if grep -q -i 'az login' "$AZ_ERR"; then
      die "not logged in to Azure: run az login, then run this again"
    elif [ -n "$SUBSCRIPTION" ]; then
      die "subscription '$SUBSCRIPTION' is not available to this login: see az account list -o table, or az login as someone who has it"
    fi
    die "az account show failed ($(head -n 1 "$AZ_ERR")): run az login, then run this again"
  fi
  say "  logged in as $ACCOUNT_USER; subscription $SUB_ID, tenant $TENANT_ID"
fi

step "Resource group $RG"
if az_read group show --name "$RG" --subscription "$SUB_ID" --query location -o tsv; then
  say "  exists (in $AZ_OUT): reused"
  LOCATION=${LOCATION:-$AZ_OUT}
else
  LOCATION=${LOCATION:-westeurope}
  az_do "creating a resource group needs Contributor on the subscription: ask an owner, or pass --resource-group of one you may use" \
    group create --name "$RG" --location "$LOCATION" --subscription "$SUB_ID" -o none
fi

step "Azure CLI extension 'ml'"
az_read extension list --query "[].name" -o tsv || true
if contains_line azure-cli-ml "$AZ_OUT"; then
  die "the old Azure ML extension (azure-cli-ml) is installed and hides 'az ml' v2: run az extension remove -n azure-cli-ml, then run this again"
fi
if contains_line ml "$AZ_OUT"; then
  say "  installed"
else
  az_do "install it yourself (az extension add -n ml), or upgrade the Azure CLI (az upgrade), then run this again" \
    extension add --name ml --yes -o none
fi

step "Azure ML workspace $WORKSPACE"
WS_ID="/subscriptions/$SUB_ID/resourceGroups/$RG/providers/Microsoft.MachineLearningServices/workspaces/$WORKSPACE"
if az_read ml workspace show --name "$WORKSPACE" --resource-group "$RG" --subscription "$SUB_ID" --query id -o tsv; then
  WS_ID=$AZ_OUT
  say "  exists: reused"
else
  say "  creating it (with its storage account, key vault and insights: a few minutes)"
  az_do "creating a workspace needs Contributor on the resource group, and the resource provider registered (az provider register --namespace Microsoft.MachineLearningServices); fix that and run this again" \
    ml workspace create --name "$WORKSPACE" --resource-group "$RG" --location "$LOCATION" --subscription "$SUB_ID" \
    --query id -o tsv
  WS_ID=${AZ_OUT:-$WS_ID}
fi

# find_app NAME STORED_ID: the app id of an existing registration into APP_ID
# ('' if none): the one .env names, else the one with that display name.
find_app() {
  local name=$1 stored=$2 what=$3 n
  APP_ID=
  if [ -n "$stored" ]; then
    if az_read ad app show --id "$stored" --query appId -o tsv; then
      APP_ID=$AZ_OUT
      say "  $what $APP_ID (named in $(basename "$ENV_FILE")): reused"
      return 0
    fi
    $DRY_RUN || warn "the app registration $stored named in $ENV_FILE does not exist (any more); looking for one named '$name'"
  fi
  az_read ad app list --filter "displayName eq '${name//\'/\'\'}'" --query "[].appId" -o tsv || true
  n=$(count_lines "$AZ_OUT")
  if [ "$n" -gt 1 ]; then
    die "there are $n app registrations named '$name': pass a unique --app-name (or --identity-name), or put the right client id into $ENV_FILE"
  elif [ "$n" -eq 1 ]; then
    APP_ID=$AZ_OUT
    say "  $what $APP_ID (named '$name'): reused"
  fi
}

NEW_SECRET_STATE="new (valid for a year)"
if $DRY_RUN; then NEW_SECRET_STATE="a new one, unless .env has one for this app"; fi
APP_HINT="registering applications needs an Azure AD role such as Application Developer (or the tenant setting that lets users register apps): ask an admin, or have one create the registration and put its client id into AAD_CLIENT_ID in .env, then run this again"

ensure_service_principal() {
  local app=$1 what=$2
  if az_read ad sp show --id "$app" --query id -o tsv; then
    SP_OBJECT_ID=$AZ_OUT
  else
    DRY="<$what-principal-object-id>" az_do "$APP_HINT" ad sp create --id "$app" --query id -o tsv
    SP_OBJECT_ID=$AZ_OUT
  fi
}

# new_secret APP_ID LABEL: a new client secret (appended: other secrets of the
# app keep working) into SECRET. Never printed.
new_secret() {
  local app=$1 label=$2
  DRY="<secret>" az_do "adding a client secret needs ownership of the app registration or an Azure AD role such as Application Administrator" \
    ad app credential reset --id "$app" --append --display-name "$label" --years 1 --query password -o tsv
  SECRET=$AZ_OUT
  if [ -z "$SECRET" ]; then
    die "az ad app credential reset returned no password for $app: run this again"
  fi
}

step "Azure AD app registration for the login: $APP_NAME"
STORED_AAD_ID=$(env_get AAD_CLIENT_ID)
STORED_AAD_SECRET=$(env_get AAD_CLIENT_SECRET)
find_app "$APP_NAME" "$STORED_AAD_ID" "app registration"
# What the hub needs of it: the redirect URI, ID tokens, the groups claim with
# security group object ids (what AAD_ALLOWED_GROUPS and AAD_ADMIN_GROUPS
# list), and the sign-in permission.
USER_READ_ACCESS="[{\"resourceAppId\": \"$GRAPH_APP_ID\", \"resourceAccess\": [{\"id\": \"$USER_READ_ID\", \"type\": \"Scope\"}]}]"
if [ -z "$APP_ID" ]; then
  DRY="<login-app-id>" az_do "$APP_HINT" \
    ad app create --display-name "$APP_NAME" --sign-in-audience AzureADMyOrg \
    --web-redirect-uris "$REDIRECT_URI" --enable-id-token-issuance true \
    --required-resource-accesses "$USER_READ_ACCESS" --query appId -o tsv
  AAD_CLIENT_ID=$AZ_OUT
  az_do "$APP_HINT" ad app update --id "$AAD_CLIENT_ID" --set groupMembershipClaims=SecurityGroup -o none
else
  AAD_CLIENT_ID=$APP_ID
  # One read, one row each (az's tsv): redirect URIs, permission ids, groups
  # claim, ID tokens.
  az_read ad app show --id "$AAD_CLIENT_ID" --query "[web.redirectUris, requiredResourceAccess[].resourceAccess[].id, groupMembershipClaims, web.implicitGrantSettings.enableIdTokenIssuance]" -o tsv
  URIS=() PERMISSIONS=() CLAIMS='' ID_TOKENS=''
  {
    IFS=$'\t' read -r -a URIS && IFS=$'\t' read -r -a PERMISSIONS && read -r CLAIMS && read -r ID_TOKENS
  } <<< "$AZ_OUT" || true
  # Redirect URIs already there stay (another name of the same hub, say).
  REDIRECTS=() HAS_REDIRECT=false
  for uri in ${URIS[@]+"${URIS[@]}"}; do
    if [ "$uri" = None ]; then continue; fi  # az's tsv for null
    REDIRECTS+=("$uri")
    if [ "$uri" = "$REDIRECT_URI" ]; then HAS_REDIRECT=true; fi
  done
  CHANGES=()
  if ! $HAS_REDIRECT; then CHANGES+=(--web-redirect-uris ${REDIRECTS[@]+"${REDIRECTS[@]}"} "$REDIRECT_URI"); fi
  case $ID_TOKENS in [Tt]rue) ;; *) CHANGES+=(--enable-id-token-issuance true) ;; esac
  # All and ApplicationGroup (groups assigned to the app) are an admin's
  # deliberate choices that also carry group ids: kept.
  case $CLAIMS in *SecurityGroup*|*All*|*ApplicationGroup*) ;; *) CHANGES+=(--set groupMembershipClaims=SecurityGroup) ;; esac
  if [ ${#CHANGES[@]} -gt 0 ]; then
    az_do "$APP_HINT" ad app update --id "$AAD_CLIENT_ID" "${CHANGES[@]}" -o none
  else
    say "  redirect URI, ID tokens, groups claim ($CLAIMS): as needed"
  fi
  found=false
  for permission in ${PERMISSIONS[@]+"${PERMISSIONS[@]}"}; do
    if [ "$permission" = "$USER_READ_ID" ]; then found=true; fi
  done
  if ! $found; then
    az_do "$APP_HINT" ad app permission add --id "$AAD_CLIENT_ID" --api "$GRAPH_APP_ID" \
      --api-permissions "$USER_READ_ID=Scope" -o none
  fi
fi
ensure_service_principal "$AAD_CLIENT_ID" login
if [ -n "$STORED_AAD_SECRET" ] && [ "$STORED_AAD_ID" = "$AAD_CLIENT_ID" ] && ! $ROTATE; then
  AAD_CLIENT_SECRET=$STORED_AAD_SECRET
  AAD_SECRET_STATE="kept the one in .env"
else
  new_secret "$AAD_CLIENT_ID" "aml-jupyterhub login ($HOST)"
  AAD_CLIENT_SECRET=$SECRET
  AAD_SECRET_STATE=$NEW_SECRET_STATE
  # Saved at once, so a failure further on does not lose it.
  env_set "AAD_TENANT_ID=$TENANT_ID" "AAD_CLIENT_ID=$AAD_CLIENT_ID" "AAD_CLIENT_SECRET=$AAD_CLIENT_SECRET"
fi
say "  client secret: $AAD_SECRET_STATE"

# resolve_groups VALUES...: object ids (comma-separated) into GROUP_IDS.
resolve_groups() {
  local value item items=() ids=""
  for value in "$@"; do
    IFS=',' read -r -a items <<< "$value"
    for item in ${items[@]+"${items[@]}"}; do
      item=$(printf '%s' "$item" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
      if [ -z "$item" ]; then continue; fi
      if ! az_read ad group show --group "$item" --query id -o tsv; then
        if $DRY_RUN; then
          AZ_OUT="<id of $item>"
        else
          die "Azure AD group '$item' not found: give its object id or exact display name (see az ad group list --display-name '$item' -o table)"
        fi
      fi
      say "  group '$item': $AZ_OUT"
      ids=${ids:+$ids,}$AZ_OUT
    done
  done
  GROUP_IDS=$ids
}

step "Azure AD groups"
if [ ${#ALLOWED_ARGS[@]} -gt 0 ]; then
  resolve_groups "${ALLOWED_ARGS[@]}"
  ALLOWED_GROUPS=$GROUP_IDS
else
  ALLOWED_GROUPS=$(env_get AAD_ALLOWED_GROUPS)
  say "  allowed groups: ${ALLOWED_GROUPS:-none} (kept from .env; change with --allowed-group)"
fi
if [ ${#ADMIN_ARGS[@]} -gt 0 ]; then
  resolve_groups "${ADMIN_ARGS[@]}"
  ADMIN_GROUPS=$GROUP_IDS
else
  ADMIN_GROUPS=$(env_get AAD_ADMIN_GROUPS)
  say "  admin groups: ${ADMIN_GROUPS:-none} (kept from .env; change with --admin-group)"
fi

# assign_role ROLE OBJECT_ID SCOPE HELD: ROLE for the service principal
# OBJECT_ID on SCOPE, unless HELD (role names, a line each) has it.
assign_role() {
  local role=$1 oid=$2 scope=$3 held=$4 try=1 rc
  local cmd=(role assignment create --assignee-object-id "$oid" --assignee-principal-type ServicePrincipal
    --role "$role" --scope "$scope" -o none)
  if contains_line "$role" "$held"; then
    say "  role '$role' on the workspace: already assigned"
    return 0
  fi
  say_command "${cmd[@]}"
  if $DRY_RUN; then return 0; fi
  while :; do
    rc=0
    az "${cmd[@]}" >/dev/null 2>"$AZ_ERR" || rc=$?
    if [ "$rc" -eq 0 ]; then return 0; fi
    if [ "$try" -lt "$RETRIES" ] && grep -q -E 'PrincipalNotFound|does not exist in the directory' "$AZ_ERR"; then
      say "  the identity is not visible to Azure RBAC yet; trying again in ${RETRY_SECONDS}s"
      sleep "$RETRY_SECONDS"
      try=$((try + 1))
      continue
    fi
    az_fail "assigning roles needs Owner, User Access Administrator or Role Based Access Control Administrator on the workspace: ask someone who has it to run the command above, then run this again" "${cmd[@]}"
  done
}

AZURE_SECRET_STATE=
if [ "$IDENTITY" = managed ]; then
  step "Managed identity $IDENTITY_NAME for the hub's Azure ML calls"
  IDENTITY_FIELDS=(--query "[clientId, principalId, id]" -o tsv)
  if az_read identity show --name "$IDENTITY_NAME" --resource-group "$RG" --subscription "$SUB_ID" "${IDENTITY_FIELDS[@]}"; then
    say "  exists: reused"
  else
    DRY=$'<identity-client-id>\n<identity-principal-id>\n'"/subscriptions/$SUB_ID/resourceGroups/$RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/$IDENTITY_NAME" \
      az_do "creating a managed identity needs Contributor (or Managed Identity Contributor) on the resource group" \
      identity create --name "$IDENTITY_NAME" --resource-group "$RG" --location "$LOCATION" --subscription "$SUB_ID" \
      "${IDENTITY_FIELDS[@]}"
  fi
  ARM_CLIENT_ID='' ARM_OBJECT_ID='' IDENTITY_ID=''
  { read -r ARM_CLIENT_ID && read -r ARM_OBJECT_ID && read -r IDENTITY_ID; } <<< "$AZ_OUT" || true
  if [ -z "$ARM_CLIENT_ID" ] || [ -z "$ARM_OBJECT_ID" ] || [ "$ARM_OBJECT_ID" = None ]; then
    die "managed identity $IDENTITY_NAME has no client or principal id yet: wait a minute and run this again"
  fi
  # azure-identity's ManagedIdentityCredential takes AZURE_CLIENT_ID as the
  # user-assigned identity; with no tenant and secret the environment
  # credential stays out of the way.
  ARM_ENV=("AML_CREDENTIAL=managed-identity" "AZURE_TENANT_ID=" "AZURE_CLIENT_ID=$ARM_CLIENT_ID" "AZURE_CLIENT_SECRET=")
else
  step "Service principal $IDENTITY_NAME for the hub's Azure ML calls"
  # AZURE_CLIENT_ID names a service principal only with a secret beside it
  # (alone, it is a managed identity's).
  STORED_ARM_SECRET=$(env_get AZURE_CLIENT_SECRET)
  STORED_ARM_ID=
  if [ -n "$STORED_ARM_SECRET" ]; then STORED_ARM_ID=$(env_get AZURE_CLIENT_ID); fi
  find_app "$IDENTITY_NAME" "$STORED_ARM_ID" "app registration"
  if [ -z "$APP_ID" ]; then
    DRY="<sp-app-id>" az_do "$APP_HINT" ad app create --display-name "$IDENTITY_NAME" \
      --sign-in-audience AzureADMyOrg --query appId -o tsv
    APP_ID=$AZ_OUT
  fi
  ARM_CLIENT_ID=$APP_ID
  ensure_service_principal "$ARM_CLIENT_ID" sp
  ARM_OBJECT_ID=$SP_OBJECT_ID
  if [ -n "$STORED_ARM_SECRET" ] && [ "$STORED_ARM_ID" = "$ARM_CLIENT_ID" ] && ! $ROTATE; then
    ARM_SECRET=$STORED_ARM_SECRET
    AZURE_SECRET_STATE="kept the one in .env"
  else
    new_secret "$ARM_CLIENT_ID" "aml-jupyterhub Azure ML ($HOST)"
    ARM_SECRET=$SECRET
    AZURE_SECRET_STATE=$NEW_SECRET_STATE
    env_set "AZURE_TENANT_ID=$TENANT_ID" "AZURE_CLIENT_ID=$ARM_CLIENT_ID" "AZURE_CLIENT_SECRET=$ARM_SECRET"
  fi
  say "  client secret: $AZURE_SECRET_STATE"
  ARM_ENV=("AML_CREDENTIAL=service-principal" "AZURE_TENANT_ID=$TENANT_ID" "AZURE_CLIENT_ID=$ARM_CLIENT_ID"
           "AZURE_CLIENT_SECRET=$ARM_SECRET")
fi

step "Roles for the hub's identity on the workspace"
# Assignments made at this very scope (inherited ones, from the resource group
# say, are not counted: the hub's own stay, whatever happens above).
az_read role assignment list --scope "$WS_ID" --query "[?principalId=='$ARM_OBJECT_ID'].roleDefinitionName" -o tsv || true
HELD_ROLES=$AZ_OUT
assign_role "$COMPUTE_ROLE" "$ARM_OBJECT_ID" "$WS_ID" "$HELD_ROLES"
assign_role "$READ_ROLE" "$ARM_OBJECT_ID" "$WS_ID" "$HELD_ROLES"

step "Settings in $ENV_FILE"
SETTINGS=(
  "HOST=$HOST"
  "LOCAL_MODE=false"
  "COMPOSE_PROFILES="
  # the local demo's test token and group names mean nothing on Azure
  "AML_STATIC_TOKEN="
  "AAD_GROUP_NAMES="
  "AAD_TENANT_ID=$TENANT_ID"
  "AAD_CLIENT_ID=$AAD_CLIENT_ID"
  "AAD_CLIENT_SECRET=$AAD_CLIENT_SECRET"
  "AAD_ALLOWED_GROUPS=$ALLOWED_GROUPS"
  "AAD_ADMIN_GROUPS=$ADMIN_GROUPS"
  "AML_SUBSCRIPTION_ID=$SUB_ID"
  "AML_RESOURCE_GROUP=$RG"
  "AML_WORKSPACE=$WORKSPACE"
  "${ARM_ENV[@]}"
)
if [ -n "$ACME_EMAIL" ]; then SETTINGS+=("ACME_EMAIL=$ACME_EMAIL"); fi
if $DRY_RUN; then
  names=""
  for kv in "${SETTINGS[@]}"; do names+=" ${kv%%=*}"; done
  say "  would set:$names"
  exit 0
fi
env_set "${SETTINGS[@]}"
say "  written (mode 600)"

if [ -z "$ALLOWED_GROUPS$ADMIN_GROUPS$(env_get AAD_ALLOWED_USERS)$(env_get AAD_ADMIN_USERS)" ] \
  && [ "$(env_get AAD_ALLOW_ALL)" != true ]; then
  warn "nobody may log in yet: pass --allowed-group (or set AAD_ALLOWED_USERS in .env); the hub refuses to start without one"
fi

cat <<EOF

Done. Azure is ready for the hub:
  subscription      $SUB_ID (tenant $TENANT_ID)
  workspace         $WORKSPACE in resource group $RG
  login app         $APP_NAME, client id $AAD_CLIENT_ID
                    redirect URI $REDIRECT_URI; secret: $AAD_SECRET_STATE
  allowed groups    ${ALLOWED_GROUPS:-none}
  admin groups      ${ADMIN_GROUPS:-none}
  hub identity      $IDENTITY_NAME ($( [ "$IDENTITY" = managed ] && echo "managed identity" || echo "service principal, secret: $AZURE_SECRET_STATE")), client id $ARM_CLIENT_ID
                    roles: $COMPUTE_ROLE, $READ_ROLE (on the workspace)
  settings          $ENV_FILE
EOF
if [ "$IDENTITY" = managed ]; then
  cat <<EOF

The hub uses the managed identity, so it must run on an Azure VM that has it.
Attach it to that VM (once):
  az vm identity assign --resource-group <vm-resource-group> --name <vm-name> \\
    --identities $IDENTITY_ID
EOF
fi
cat <<EOF

Point the DNS name $HOST at the VM's public IP (ports 80 and 443 open), then:
  make up
EOF
