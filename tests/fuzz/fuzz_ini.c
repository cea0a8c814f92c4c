/* The INI run configuration: inih and dapt's schema validation
 * (dapt_config_load_string).  An accepted file must survive the round
 * trip the driver relies on (dapt config show, the dapt_config attribute
 * of every HDF5 file): the resolved text, parsed again, resolves to the
 * same text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/config.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static dapt_config cfg, again; /* large: off the stack */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)fuzz_init(argc, argv);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    dapt_config_defaults(&cfg);
    dapt_status st = dapt_config_load_string(&cfg, text, "fuzz.ini");
    free(text);
    fuzz_done(st);
    if (st != DAPT_OK) return 0;
    char *ini = NULL, *ini2 = NULL;
    st = dapt_config_to_ini(&cfg, 0, &ini);
    if (st != DAPT_OK) abort(); /* an accepted configuration must print */
    dapt_config_defaults(&again);
    st = dapt_config_load_string(&again, ini, "resolved.ini");
    if (st == DAPT_OK) st = dapt_config_to_ini(&again, 0, &ini2);
    if (st != DAPT_OK || strcmp(ini, ini2) != 0) {
        fprintf(stderr, "fuzz: the resolved configuration does not read back as itself: %s\n--- resolved\n%s",
                st != DAPT_OK ? dapt_error_message() : "different text", ini);
        abort();
    }
    free(ini);
    free(ini2);
    return 0;
}
