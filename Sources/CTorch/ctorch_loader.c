// The libtorch bridge opened on first use, in the style of PyTorch's LazyNVRTC: fuse3d does not link
// libtorch, so commands that do not train start without it and run where it is not installed. Each
// function of ctorch.h is a trampoline that jumps through a table filled by dlsym when the bridge
// is first needed; the table's entries are generated from ctorch.h (ctorch_functions.h).
#define _GNU_SOURCE
#include "ctorch.h"
#include "ctorch_functions.h"
#include "ctorch_loader.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// The folder `make torch` writes the bridge to, compiled in by Package.swift: the last place searched.
#ifndef CTORCH_BUILD_DIR
#define CTORCH_BUILD_DIR ".build/torch"
#endif

#define CTORCH_INDEX_VOID(name, params, args) CTORCH_INDEX_##name,
#define CTORCH_INDEX_VALUE(ret, name, params, args) CTORCH_INDEX_##name,
enum { CTORCH_FUNCTIONS(CTORCH_INDEX_VOID, CTORCH_INDEX_VALUE) CTORCH_INDEX_COUNT };

#define CTORCH_NAME_VOID(name, params, args) #name,
#define CTORCH_NAME_VALUE(ret, name, params, args) #name,
static const char *const function_names[CTORCH_INDEX_COUNT] = {CTORCH_FUNCTIONS(CTORCH_NAME_VOID, CTORCH_NAME_VALUE)};

static void *table[CTORCH_INDEX_COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int usable;
static char error_text[4096];
static char opened_path[PATH_MAX];

static void fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(error_text, sizeof error_text, format, args);
    va_end(args);
}

static int is_file(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

static int is_directory(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
}

// The folder of the running executable (the bundle's, or .build/<config>), or "" when unknown.
static void executable_folder(char *out, size_t size) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    out[0] = 0;
    if (n <= 0) return;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    snprintf(out, size, "%s", exe);
}

// The command that builds a bridge for this installation: the bundle ships its own build script.
static void build_hint(const char *exe_dir, char *out, size_t size) {
    char script[PATH_MAX];
    snprintf(script, sizeof script, "%s/torch/build-torch-shim.sh", exe_dir);
    if (is_file(script))
        snprintf(out, size, "build it against your PyTorch with `%s /path/to/python` (or LIBTORCH=/path/to/libtorch %s)",
                 script, script);
    else
        snprintf(out, size, "build it with `make torch` (your PyTorch: `make torch PYTHON=/path/to/python`; "
                            "a libtorch folder: `make torch LIBTORCH=/path`)");
}

// True when `exe_dir` lies in the .build folder that holds CTORCH_BUILD_DIR.
static int inside_build_tree(const char *exe_dir) {
    char build_root[PATH_MAX];
    snprintf(build_root, sizeof build_root, "%s", CTORCH_BUILD_DIR);
    char *slash = strrchr(build_root, '/');
    if (!slash || slash == build_root) return 0;
    slash[1] = 0;
    return strncmp(exe_dir, build_root, strlen(build_root)) == 0;
}

// Opens `path` and fills the table; on failure leaves the reason in error_text and returns 0.
static int open_bridge(const char *path, const char *hint) {
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        fail("the libtorch bridge %s could not be opened: %s. Is the libtorch it was built against still "
             "there? Otherwise %s, or set FUSE3D_TORCH to a working " CTORCH_LIBRARY_NAME ".", path, dlerror(), hint);
        return 0;
    }
    const char *(*abi)(void) = (const char *(*)(void))dlsym(library, "ctorch_shim_abi");
    const char *found = abi ? abi() : "none";
    if (strcmp(found, CTORCH_ABI_HASH) != 0) {
        fail("the libtorch bridge %s was built from another version of ctorch.h (interface %s; this fuse3d needs %s): "
             "%s.", path, found, CTORCH_ABI_HASH, hint);
        dlclose(library);
        return 0;
    }
    for (int i = 0; i < CTORCH_INDEX_COUNT; ++i) {
        table[i] = dlsym(library, function_names[i]);
        if (!table[i]) {
            fail("the libtorch bridge %s lacks %s: %s.", path, function_names[i], hint);
            dlclose(library);
            return 0;
        }
    }
    snprintf(opened_path, sizeof opened_path, "%s", path);
    return 1;
}

static void load_once(void) {
    char exe_dir[PATH_MAX], hint[2 * PATH_MAX + 200], beside[PATH_MAX + 64], places[3 * PATH_MAX];
    executable_folder(exe_dir, sizeof exe_dir);
    build_hint(exe_dir, hint, sizeof hint);
    snprintf(beside, sizeof beside, "%s/" CTORCH_LIBRARY_NAME, exe_dir);
    const char *built = CTORCH_BUILD_DIR "/" CTORCH_LIBRARY_NAME;
    // Only an executable of this checkout (.build/debug, .build/release, the test runner) looks in its
    // build folder: a copied or installed fuse3d never reaches back into a source tree.
    int search_build = inside_build_tree(exe_dir);
    if (search_build) snprintf(places, sizeof places, "%s, %s", beside, built);
    else snprintf(places, sizeof places, "%s", beside);

    // An explicit FUSE3D_TORCH (the library or its folder) is the only place looked at.
    const char *env = getenv("FUSE3D_TORCH");
    if (env && *env) {
        char path[PATH_MAX + 64];
        if (is_directory(env)) snprintf(path, sizeof path, "%s/" CTORCH_LIBRARY_NAME, env);
        else snprintf(path, sizeof path, "%s", env);
        if (!is_file(path)) {
            fail("the libtorch bridge was not found at FUSE3D_TORCH=%s (looked for %s); %s, or unset FUSE3D_TORCH "
                 "to search %s.", env, path, hint, places);
            return;
        }
        usable = open_bridge(path, hint);
        return;
    }
    if (is_file(beside)) { usable = open_bridge(beside, hint); return; }
    if (search_build && is_file(built)) { usable = open_bridge(built, hint); return; }
    fail("the libtorch bridge " CTORCH_LIBRARY_NAME " was not found (looked in: FUSE3D_TORCH (unset), %s); "
         "%s, or set FUSE3D_TORCH to its path. Only training needs it.", places, hint);
}

int ctorch_load(void) {
    pthread_once(&once, load_once);
    return usable;
}

const char *ctorch_load_error(void) { return ctorch_load() ? NULL : error_text; }

const char *ctorch_library_path(void) { return ctorch_load() ? opened_path : NULL; }

// The last resort for a call that did not go through Swift's throwing ctorch_load: one clear line, then exit.
static void require_bridge(void) {
    if (__builtin_expect(ctorch_load(), 1)) return;
    fprintf(stderr, "fuse3d: %s\n", error_text);
    exit(EXIT_FAILURE);
}

#define CTORCH_TRAMPOLINE_VOID(name, params, args) \
    void name params {                             \
        require_bridge();                          \
        ((void(*) params)table[CTORCH_INDEX_##name]) args; \
    }
#define CTORCH_TRAMPOLINE_VALUE(ret, name, params, args) \
    ret name params {                                    \
        require_bridge();                                \
        return ((ret(*) params)table[CTORCH_INDEX_##name]) args; \
    }
CTORCH_FUNCTIONS(CTORCH_TRAMPOLINE_VOID, CTORCH_TRAMPOLINE_VALUE)
