@@COMMON@@

# pair.sh: install the package, then activate the VEN with the PCE right away.
finish() {
    install_package
    echo "Pairing with Illumio"
    local proxy=()
    if [ -n "$PROXY_SERVER" ]; then
        proxy=(--proxy-server "$PROXY_SERVER")
    fi
    # As documented: the activation file first, then the VEN activates from it, so the code is never on
    # a command line. A successful activation removes the file; a failed one must not leave the code behind.
    write_activation_config
    if ! PCELAB_CA_FILE="$CA_BUNDLE" "$CTL" activate --management-server "$MANAGEMENT_SERVER" \
        ${proxy[@]+"${proxy[@]}"} ${ACTIVATE_OPTIONS[@]+"${ACTIVATE_OPTIONS[@]}"}; then
        rm -f "$DATA_DIR/etc/agent_activation.cfg"
        die "VEN activation failed"
    fi
    echo "Workload has been SUCCESSFULLY paired with Illumio"
}

main "$@"
