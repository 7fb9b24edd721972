"""{{name}}: a wsserver plugin. It echoes each whole message back to its
sender with its format; replace `message` with your own logic. The API:
{{sdk}}/python/README.md."""

from wsserver_sdk import Plugin, export_plugin


class App(Plugin):
    def message(self, ctx, message):
        ctx.send_message(message)


Handler, Lifecycle = export_plugin(App)
