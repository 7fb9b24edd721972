// A plugin built for a world that also imports test:extra/missing, an
// interface no wsserver provides: the server must refuse it by name.
import { Plugin, exportPlugin } from "wsserver-sdk";

export const { handler } = exportPlugin(Plugin);
