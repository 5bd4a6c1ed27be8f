"""Checks an SBOM with the reference tools, not with pyferry's own reading of it.

    validate.py cyclonedx FILE   CycloneDX 1.6 JSON, by cyclonedx-python-lib's strict JSON
                                 schema validator (unknown fields are errors, formats checked)
    validate.py spdx FILE        SPDX 2.3 JSON, parsed and validated by spdx-tools

Exit status 0 when the document is valid; otherwise 1, with every error on stderr.
"""

import sys


def check_cyclonedx(path):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    with open(path, encoding="utf-8") as document:
        text = document.read()
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text, all_errors=True)
    return [str(error) for error in (errors or [])]


def check_spdx(path):
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    document = parse_file(path)
    if document.creation_info.spdx_version != "SPDX-2.3":
        return [f"not SPDX 2.3: {document.creation_info.spdx_version}"]
    return [message.validation_message for message in validate_full_spdx_document(document)]


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("cyclonedx", "spdx"):
        print(__doc__, file=sys.stderr)
        return 2
    check = check_cyclonedx if sys.argv[1] == "cyclonedx" else check_spdx
    errors = check(sys.argv[2])
    for error in errors:
        print(error, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
