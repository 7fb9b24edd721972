// {{name}}: a wsserver plugin. It echoes each whole message back to its
// sender with its format; replace `message` with your own logic. The API:
// {{sdk}}/js/README.md and {{sdk}}/js/src/index.d.ts.
import { Plugin, exportPlugin } from "wsserver-sdk";

class App extends Plugin {
  message(ctx, message) {
    ctx.sendMessage(message);
  }
}

export const { handler, lifecycle } = exportPlugin(App);
