#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Entry point of the cloner image (CDI runs /usr/bin/cloner_startup.sh in its clone-source pods).
# Host-assisted cloning is not implemented in cdi-import yet: fail with one clear line and a
# non-zero exit instead of pretending, so the controller shows the pod's failure.
msg="cdi-import cloner: host-assisted clone is not implemented yet (VOLUME_MODE=${VOLUME_MODE:-unset}, MOUNT_POINT=${MOUNT_POINT:-unset}); use CDI's own cloner image"
echo "$msg" >&2
# kubelet mounts /dev/termination-log; write it when it is there (outside a pod it is not)
if [ -w /dev/termination-log ]; then printf '%s' "$msg" > /dev/termination-log; fi
exit 1
