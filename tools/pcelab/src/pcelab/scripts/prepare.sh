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

main "$@"
