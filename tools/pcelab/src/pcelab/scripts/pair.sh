@@COMMON@@

# pair.sh: install the package, then activate the VEN with the PCE right away.
finish() {
    install_package
    echo "Pairing with Illumio"
    local proxy=()
    if [ -n "$PROXY_SERVER" ]; then
        proxy=(--proxy-server "$PROXY_SERVER")
    fi
    PCELAB_CA_FILE="$CA_BUNDLE" "$CTL" activate --management-server "$MANAGEMENT_SERVER" \
        --activation-code "$ACTIVATION_CODE" ${proxy[@]+"${proxy[@]}"} \
        ${ACTIVATE_OPTIONS[@]+"${ACTIVATE_OPTIONS[@]}"} || die "VEN activation failed"
    echo "Workload has been SUCCESSFULLY paired with Illumio"
}

main "$@"
