#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Entry point of the cloner image (CDI runs /usr/bin/cloner_startup.sh in its clone-source pods),
# with CDI's contract (cmd/cdi-cloner/cloner_startup.sh): VOLUME_MODE and MOUNT_POINT from the
# controller; UPLOAD_BYTES from blockdev (block) or du (filesystem: apparent size when
# preallocating, allocated bytes otherwise); then cdi-cloner with the flags CDI's cloner takes.
# CDI_CLONER overrides the cdi-cloner path (tests outside the image).
set -euo pipefail

if [[ -z "${VOLUME_MODE:-}" ]]; then
    echo "VOLUME_MODE missing" 1>&2
    exit 1
fi

if [[ -z "${MOUNT_POINT:-}" ]]; then
    echo "MOUNT_POINT missing" 1>&2
    exit 1
fi

CLONER="${CDI_CLONER:-/usr/bin/cdi-cloner}"

echo "VOLUME_MODE=$VOLUME_MODE"
echo "MOUNT_POINT=$MOUNT_POINT"

if [ "$VOLUME_MODE" == "block" ]; then
    UPLOAD_BYTES=$(blockdev --getsize64 "$MOUNT_POINT")
    echo "UPLOAD_BYTES=$UPLOAD_BYTES"

    exec "$CLONER" -v=3 -alsologtostderr -content-type blockdevice-clone -upload-bytes "$UPLOAD_BYTES" -mount "$MOUNT_POINT"
else
    cd "$MOUNT_POINT"
    if [ "${PREALLOCATION:-}" == "true" ]; then
        echo "Preallocating filesystem, uploading all bytes"
        UPLOAD_BYTES=$(du -sb . | cut -f1)
    else
        echo "Not preallocating filesystem, uploading only used bytes"
        UPLOAD_BYTES=$(du -s --block-size=1 . | cut -f1)
    fi
    echo "UPLOAD_BYTES=$UPLOAD_BYTES"

    exec "$CLONER" -v=3 -alsologtostderr -content-type filesystem-clone -upload-bytes "$UPLOAD_BYTES" -mount "$MOUNT_POINT"
fi
