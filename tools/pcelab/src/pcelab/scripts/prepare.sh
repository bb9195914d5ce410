@@COMMON@@

# prepare.sh (golden images): install the package without activating it and leave the activation settings
# in agent_activation.cfg, which the VEN reads at the next boot of a machine made from the image.
finish() {
    if [ "${#ACTIVATE_OPTIONS[@]}" -gt 0 ]; then
        die "prepare.sh takes no activate options (${ACTIVATE_OPTIONS[0]}): the pairing profile decides them"
    fi
    install_package VEN_INSTALL_ACTION=prepare
    write_activation_config
    echo "VEN installed and prepared: it activates with the PCE at the next boot"
}

write_activation_config() {
    local config="$DATA_DIR/etc/agent_activation.cfg"
    rm -f "$config"
    (umask 027 && printf 'activation_code: %s\nmasterconfig_server: %s\n' \
        "$ACTIVATION_CODE" "$MANAGEMENT_SERVER" >"$config")
    # The VEN's unprivileged user reads it at boot; nobody else may.
    if [ -z "$ROOT" ] && getent group ilo-ven >/dev/null 2>&1; then
        chgrp ilo-ven "$config"
    fi
    echo "Wrote $config"
}

main "$@"
