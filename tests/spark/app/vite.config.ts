// As in GitHub's spark-template: React, the Spark plugin (it defines BASE_KV_SERVICE_URL for the client)
// and the Phosphor icon proxy. The template's Tailwind and shadcn/ui are left out: they add nothing the
// runtime sees.
import react from "@vitejs/plugin-react";
import { defineConfig, PluginOption } from "vite";
import sparkPlugin from "@github/spark/spark-vite-plugin";
import createIconImportProxy from "@github/spark/vitePhosphorIconProxyPlugin";
import { resolve } from "path";

const projectRoot = process.env.PROJECT_ROOT || import.meta.dirname;

export default defineConfig({
  plugins: [react(), createIconImportProxy() as PluginOption, sparkPlugin() as PluginOption],
  resolve: { alias: { "@": resolve(projectRoot, "src") } },
});
