/* The wit-bindgen C bindings of the world this plugin is built for. Both
 * worlds generate the same interface types; only the world-level helper
 * types carry the world's name. WSSERVER_STATEFUL (wsserver-cc --stateful)
 * picks `stateful-plugin`, which also exports `lifecycle`. */
#ifndef WSSERVER_SDK_BINDINGS_H
#define WSSERVER_SDK_BINDINGS_H

#ifdef WSSERVER_STATEFUL
#include "stateful_plugin.h"
#define WSB(name) stateful_plugin_##name
#else
#include "plugin.h"
#define WSB(name) plugin_##name
#endif

typedef WSB(string_t) wsb_string_t;
typedef WSB(list_u8_t) wsb_list_u8_t;
typedef WSB(option_string_t) wsb_option_string_t;
typedef WSB(list_string_t) wsb_list_string_t;
typedef WSB(option_list_u8_t) wsb_option_list_u8_t;
#define wsb_string_free WSB(string_free)
#define wsb_string_dup_n WSB(string_dup_n)
#define wsb_list_u8_free WSB(list_u8_free)

#endif
