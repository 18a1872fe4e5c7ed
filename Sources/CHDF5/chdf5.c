#include "chdf5.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hid_t ch5_P_DEFAULT(void) { return H5P_DEFAULT; }
hid_t ch5_S_ALL(void) { return H5S_ALL; }
hsize_t ch5_S_UNLIMITED(void) { return H5S_UNLIMITED; }
size_t ch5_T_VARIABLE(void) { return H5T_VARIABLE; }
unsigned ch5_F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
unsigned ch5_F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
hid_t ch5_P_FILE_CREATE(void) { return H5P_FILE_CREATE; }
hid_t ch5_P_FILE_ACCESS(void) { return H5P_FILE_ACCESS; }
hid_t ch5_P_DATASET_CREATE(void) { return H5P_DATASET_CREATE; }
hid_t ch5_T_NATIVE_INT8(void) { return H5T_NATIVE_INT8; }
hid_t ch5_T_NATIVE_UINT8(void) { return H5T_NATIVE_UINT8; }
hid_t ch5_T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
hid_t ch5_T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
hid_t ch5_T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
hid_t ch5_T_STD_I8LE(void) { return H5T_STD_I8LE; }
hid_t ch5_T_STD_U8LE(void) { return H5T_STD_U8LE; }
hid_t ch5_T_STD_I64LE(void) { return H5T_STD_I64LE; }
hid_t ch5_T_IEEE_F32LE(void) { return H5T_IEEE_F32LE; }
hid_t ch5_T_IEEE_F64LE(void) { return H5T_IEEE_F64LE; }
hid_t ch5_T_C_S1(void) { return H5T_C_S1; }

hid_t ch5_float16_le(void) {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return t;
    /* Same call order as h5py: fields first (they must fit the 4-byte precursor), then shrink. */
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

static _Thread_local int silenced = 0;

void ch5_silence_errors(void) {
    /* HDF5's thread-safe build keeps the error stack (and its auto-print) per thread. */
    if (!silenced) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        silenced = 1;
    }
}

typedef struct { char *text; size_t len; } error_text;

static herr_t append_error(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    error_text *acc = (error_text *)data;
    const char *fn = e->func_name ? e->func_name : "?";
    const char *desc = e->desc ? e->desc : "";
    size_t add = strlen(fn) + strlen(desc) + 5;
    char *grown = realloc(acc->text, acc->len + add);
    if (!grown) return -1;
    acc->text = grown;
    acc->len += (size_t)snprintf(acc->text + acc->len, add, "%s%s: %s", acc->len ? "; " : "", fn, desc);
    return 0;
}

char *ch5_take_error(void) {
    error_text acc = {NULL, 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, append_error, &acc);
    H5Eclear2(H5E_DEFAULT);
    return acc.text;
}

void ch5_string_free(char *s) { free(s); }
