/* SPDX-License-Identifier: Apache-2.0 */
/* TEMPORARY stand-ins for the parts of image reading that other branches
 * write (image-layer.c, image-tree.c, image-deb.c, image-registry.c), so
 * that this branch links on its own. meson builds this file only while one
 * of those files is missing, and only the missing part: once they are all
 * merged it is no longer built, and should be deleted. Each stand-in fails
 * with "not built yet". */
#include <errno.h>

#include "image.h"

#define NOT_BUILT(err, what) img_error_set((err), -ENOSYS, "%s: not built yet", (what))

#ifdef KIMA_STANDIN_LAYER
int img_layers_read(size_t n, img_open_fn open, void *ctx, const char *const *labels,
                    const struct img_options *o, struct img_layer **ret, struct img_error *err) {
    (void)n, (void)open, (void)ctx, (void)labels, (void)o, (void)ret;
    return NOT_BUILT(err, "reading layers");
}

void img_layer_free(struct img_layer *l) {
    (void)l;
}
#endif

#ifdef KIMA_STANDIN_DEB
int img_deb_read(const char *path, const struct img_options *o, struct img_layer **ret,
                 struct img_error *err) {
    (void)path, (void)o, (void)ret;
    return NOT_BUILT(err, "reading .deb packages");
}
#endif

#ifdef KIMA_STANDIN_TREE
int img_tree_new(struct img_tree **ret) {
    (void)ret;
    return -ENOSYS;
}

void img_tree_free(struct img_tree *t) {
    (void)t;
}

int img_tree_apply(struct img_tree *t, const struct img_layer *l, const struct img_options *o,
                   struct img_error *err) {
    (void)t, (void)l, (void)o;
    return NOT_BUILT(err, "applying layers");
}

int img_tree_add_dir(struct img_tree *t, const char *dir, const struct img_options *o,
                     struct img_error *err) {
    (void)t, (void)dir, (void)o;
    return NOT_BUILT(err, "reading directories");
}

int img_tree_files(const struct img_tree *t, img_file_fn fn, void *ctx) {
    (void)t, (void)fn, (void)ctx;
    return -ENOSYS;
}
#endif

#ifdef KIMA_STANDIN_REGISTRY
int img_registry_open(const char *host, const char *repo, const struct img_source_config *cfg,
                      struct img_source **ret, struct img_error *err) {
    (void)host, (void)repo, (void)cfg, (void)ret;
    return NOT_BUILT(err, "registries");
}
#endif
