/* Exercises every function of the C ABI, including every error path, as a C host would.
 * Built with -std=c11 -Wall -Wextra -Werror and run under AddressSanitizer by scripts/test.sh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uptake.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        checks++;                                                                         \
        if (!(cond)) {                                                                    \
            failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__,       \
                    __LINE__, #cond, uptake_last_error());                                \
        }                                                                                 \
    } while (0)

/* The status and a non-empty last error that mentions `needle`. */
#define CHECK_ERR(call, status, needle)                                                   \
    do {                                                                                  \
        uint32_t st_ = (call);                                                            \
        CHECK(st_ == (status));                                                           \
        CHECK(strstr(uptake_last_error(), (needle)) != NULL);                             \
    } while (0)

static int log_lines = 0;
static void on_log(uint32_t level, const char *message, void *user_data) {
    (void)level;
    int *counter = (int *)user_data;
    if (message != NULL && message[0] != '\0') {
        (*counter)++;
    }
}

static UptakeVolume valid_volume(const float *data) {
    UptakeVolume v;
    CHECK(uptake_volume_init(&v) == UPTAKE_OK);
    v.dims[0] = 4;
    v.dims[1] = 3;
    v.dims[2] = 2;
    for (int i = 0; i < 3; i++) {
        v.spacing_mm[i] = 2.0;
        v.origin_mm[i] = -10.0;
    }
    v.data = data;
    v.data_len = 24;
    return v;
}

static void test_versions(void) {
    CHECK(uptake_abi_version() == UPTAKE_ABI_VERSION);
    const char *version = uptake_version();
    CHECK(version != NULL && strlen(version) >= 5);
    CHECK(strcmp(uptake_status_name(UPTAKE_OK), "ok") == 0);
    CHECK(strcmp(uptake_status_name(UPTAKE_ERR_PANIC), "panic") == 0);
    CHECK(strcmp(uptake_status_name(12345), "unknown status") == 0);
}

static void test_last_error_copy(void) {
    /* Produce a known error first. */
    CHECK_ERR(uptake_analyzer_options_init(NULL), UPTAKE_ERR_INVALID_ARGUMENT, "options is NULL");
    const char *expected = uptake_last_error();
    size_t len = 0;
    char big[256];
    CHECK(uptake_last_error_copy(big, sizeof big, &len) == UPTAKE_OK);
    CHECK(len == strlen(expected));
    CHECK(strcmp(big, expected) == 0);
    char small[8];
    CHECK(uptake_last_error_copy(small, sizeof small, &len) == UPTAKE_ERR_INVALID_ARGUMENT);
    CHECK(strlen(small) == sizeof small - 1);
    CHECK(strncmp(small, expected, sizeof small - 1) == 0);
    CHECK(uptake_last_error_copy(NULL, 0, &len) == UPTAKE_ERR_INVALID_ARGUMENT);
    CHECK(len == strlen(expected));
    CHECK(uptake_last_error_copy(NULL, 10, NULL) == UPTAKE_ERR_INVALID_ARGUMENT);
    /* Copying does not change the stored message. */
    CHECK(strcmp(uptake_last_error(), big) == 0);
}

static void test_analyzer(void) {
    UptakeAnalyzer *analyzer = (UptakeAnalyzer *)0x1;
    /* NULL options = defaults. */
    CHECK(uptake_analyzer_create(NULL, &analyzer) == UPTAKE_OK);
    CHECK(analyzer != NULL);
    uint32_t device = 99;
    CHECK(uptake_analyzer_device(analyzer, &device) == UPTAKE_OK);
    CHECK(device == UPTAKE_DEVICE_CPU);
    CHECK_ERR(uptake_analyzer_device(analyzer, NULL), UPTAKE_ERR_INVALID_ARGUMENT, "out_device");
    CHECK_ERR(uptake_analyzer_device(NULL, &device), UPTAKE_ERR_INVALID_ARGUMENT, "analyzer");
    uptake_analyzer_free(analyzer);
    uptake_analyzer_free(NULL);

    UptakeAnalyzerOptions options;
    CHECK(uptake_analyzer_options_init(&options) == UPTAKE_OK);
    CHECK(options.struct_size == sizeof options);
    CHECK(options.device == UPTAKE_DEVICE_AUTO);
    CHECK(options.model_path == NULL);
    options.device = UPTAKE_DEVICE_CPU;
    options.threads = 2;
    CHECK(uptake_analyzer_create(&options, &analyzer) == UPTAKE_OK);
    uptake_analyzer_free(analyzer);

    CHECK_ERR(uptake_analyzer_create(&options, NULL), UPTAKE_ERR_INVALID_ARGUMENT, "out is NULL");

    UptakeAnalyzerOptions bad = options;
    bad.struct_size = 0;
    analyzer = (UptakeAnalyzer *)0x1;
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT, "struct_size");
    CHECK(analyzer == NULL); /* cleared on failure */
    bad.struct_size = 3;
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT, "struct_size");
    bad.struct_size = 1u << 20;
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT, "struct_size");

    /* A newer caller's larger struct is fine when the fields we do not know are zero. */
    struct {
        UptakeAnalyzerOptions known;
        uint64_t future;
    } newer;
    memset(&newer, 0, sizeof newer);
    CHECK(uptake_analyzer_options_init(&newer.known) == UPTAKE_OK);
    newer.known.struct_size = sizeof newer;
    CHECK(uptake_analyzer_create(&newer.known, &analyzer) == UPTAKE_OK);
    uptake_analyzer_free(analyzer);
    newer.future = 7;
    CHECK_ERR(uptake_analyzer_create(&newer.known, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT,
              "does not support");

    bad = options;
    bad.device = 9;
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT, "device");
    bad = options;
    bad.reserved = 1;
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT, "reserved");
    bad = options;
    bad.threads = 100000;
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT, "threads");
    bad = options;
    bad.model_path = "/nonexistent/model.safetensors";
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT, "model");
    bad = options;
    bad.model_path = "\xff\xfe";
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT, "UTF-8");
    bad = options;
    bad.device = UPTAKE_DEVICE_CUDA;
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_DEVICE, "CUDA");
    CHECK(analyzer == NULL);
}

static void test_volume(void) {
    float data[24];
    for (int i = 0; i < 24; i++) {
        data[i] = (float)i;
    }
    float before[24];
    memcpy(before, data, sizeof data);

    UptakeVolume v = valid_volume(data);
    CHECK(uptake_volume_check(&v) == UPTAKE_OK);
    CHECK(memcmp(before, data, sizeof data) == 0); /* caller's data untouched */

    CHECK_ERR(uptake_volume_check(NULL), UPTAKE_ERR_INVALID_ARGUMENT, "volume is NULL");
    CHECK_ERR(uptake_volume_init(NULL), UPTAKE_ERR_INVALID_ARGUMENT, "volume is NULL");

    UptakeVolume bad = v;
    bad.struct_size = 8;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "struct_size");
    bad = v;
    bad.dims[1] = 0;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "dimension 1 is zero");
    bad = v;
    bad.dims[0] = bad.dims[1] = bad.dims[2] = 4096;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "2^31");
    bad = v;
    bad.spacing_mm[2] = -1.0;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "spacing");
    bad = v;
    bad.spacing_mm[0] = NAN;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "spacing");
    bad = v;
    bad.origin_mm[0] = INFINITY;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "origin");
    bad = v;
    bad.direction[1] = 0.5;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "orthonormal");
    bad = v;
    bad.data = NULL;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "data is NULL");
    bad = v;
    bad.data_len = 23;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "data_len");
    bad = v;
    bad.data = (const float *)((const char *)data + 1);
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "aligned");

    data[5] = NAN;
    data[7] = INFINITY;
    CHECK_ERR(uptake_volume_check(&v), UPTAKE_ERR_INVALID_ARGUMENT, "2 non-finite");
}

static void test_logging(void) {
    CHECK_ERR(uptake_set_log_callback(on_log, &log_lines, 77), UPTAKE_ERR_INVALID_ARGUMENT,
              "max_level");
    CHECK(uptake_set_log_callback(on_log, &log_lines, UPTAKE_LOG_INFO) == UPTAKE_OK);
    UptakeAnalyzer *analyzer = NULL;
    /* device auto logs which device it chose. */
    CHECK(uptake_analyzer_create(NULL, &analyzer) == UPTAKE_OK);
    uptake_analyzer_free(analyzer);
    CHECK(log_lines > 0);
    int before = log_lines;
    CHECK(uptake_set_log_callback(NULL, NULL, UPTAKE_LOG_TRACE) == UPTAKE_OK);
    CHECK(uptake_analyzer_create(NULL, &analyzer) == UPTAKE_OK);
    uptake_analyzer_free(analyzer);
    CHECK(log_lines == before);
}

static void test_plugin_table(void) {
    const UptakePluginV1 *plugin = uptake_plugin_v1();
    CHECK(plugin != NULL);
    CHECK(plugin->struct_size == sizeof(UptakePluginV1));
    CHECK(plugin->abi_version == UPTAKE_ABI_VERSION);
    CHECK(strcmp(plugin->name, "uptake") == 0);
    CHECK(strcmp(plugin->version, uptake_version()) == 0);
    CHECK(plugin->analyzer_create == uptake_analyzer_create);
    CHECK(plugin->volume_check == uptake_volume_check);
    UptakeAnalyzer *analyzer = NULL;
    CHECK(plugin->analyzer_create(NULL, &analyzer) == UPTAKE_OK);
    plugin->analyzer_free(analyzer);
    CHECK(plugin->volume_check(NULL) == UPTAKE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(plugin->last_error(), "NULL") != NULL);
}

int main(void) {
    test_versions();
    test_last_error_copy();
    test_analyzer();
    test_volume();
    test_logging();
    test_plugin_table();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
