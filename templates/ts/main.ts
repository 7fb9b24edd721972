// {{name}}: a wsserver plugin in TypeScript. It echoes each whole message
// back to its sender with its format; replace `message` with your own
// logic. Types: {{sdk}}/js/src/index.d.ts; the API: {{sdk}}/js/README.md.
import { Context, Message, Plugin, exportPlugin } from "wsserver-sdk";

class App extends Plugin {
  override message(ctx: Context, message: Message): void {
    ctx.sendMessage(message);
  }
}

export const { handler, lifecycle } = exportPlugin(App);
