#!/bin/sh
# Boot of an emulated compute instance: install the admin key, then run sshd
# in the foreground (tini, PID 1, forwards docker stop's SIGTERM to it).
#
# AML_ADMIN_PUBLIC_KEY  the admin public key given at creation; empty = SSH
#                       accepts no key (AML's on-behalf-of case).
# AML_SSHD_ACCEPT_ENV   client environment variables sshd passes on
#                       (default: Debian/Ubuntu's stock "LANG LC_*").
# AML_CI_NAME           the instance's name: where the workspace file share is
#                       mounted (the runtime mounts it; unset = no share).
set -eu
home=/home/azureuser

# The home is a volume (the instance's disk). Docker copies the image's
# skeleton into it on first mount; keep it owned by azureuser in any case.
install -d -m 0755 -o azureuser -g azureuser "$home"
install -d -m 0700 -o azureuser -g azureuser "$home/.ssh"

if [ -n "${AML_ADMIN_PUBLIC_KEY:-}" ]; then
    keys="$home/.ssh/authorized_keys"
    touch "$keys"
    grep -qxF "$AML_ADMIN_PUBLIC_KEY" "$keys" || printf '%s\n' "$AML_ADMIN_PUBLIC_KEY" >> "$keys"
    chown azureuser:azureuser "$keys"
    chmod 0600 "$keys"
fi

# The workspace file share (AML: the workspace's code-<guid> SMB share, the
# same one on every instance of the workspace), mounted by the runtime where
# AML mounts it; ~/cloudfiles/code links to it. AML shows it root-owned and
# every entry 777: the mount point gets that mode, and a default ACL gives new
# entries rw(x) for everyone (when the volume's file system keeps ACLs).
if [ -n "${AML_CI_NAME:-}" ]; then
    share="/mnt/batch/tasks/shared/LS_root/mounts/clusters/$AML_CI_NAME/code"
    if [ -d "$share" ]; then
        chown root:root "$share"
        chmod 0777 "$share"
        setfacl -d -m u::rwx,g::rwx,o::rwx "$share" 2>/dev/null || true
        install -d -m 0755 -o azureuser -g azureuser "$home/cloudfiles"
        link="$home/cloudfiles/code"
        # a directory the user made there is theirs: left alone
        if [ -L "$link" ] || [ ! -e "$link" ]; then
            ln -sfn "$share" "$link"
            chown -h azureuser:azureuser "$link"
        fi
    fi
fi

printf 'AcceptEnv %s\n' "${AML_SSHD_ACCEPT_ENV:-LANG LC_*}" > /etc/ssh/sshd_config.d/aml-accept-env.conf

ssh-keygen -A >/dev/null
mkdir -p /run/sshd
chmod 0755 /run/sshd
exec /usr/sbin/sshd -D -e
