import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;

/**
 * Runs a single Elasticsearch node (8.17 or 9.x) from the jars Maven Central serves: the server (on the module path)
 * and the transport-netty4 module (in HOME/modules, which the node loads like the distribution's).
 * Nothing else of the distribution is served, so the node has no data stream APIs, ILM, GET /,
 * ingest processors or painless, and lacks the mapper types of modules and x-pack (docs/ARCHITECTURE.md).
 *
 * Usage: ElasticsearchLauncher HOME HTTP_PORT TRANSPORT_PORT
 */
public final class ElasticsearchLauncher {
    /** 8.x: {@code new Node(env)}; 9.x: {@code new Node(env, pluginsLoader)} with the modules and plugins
     *  read from HOME, as its bootstrap does (by reflection: one source for both). */
    private static Node newNode(Environment env) throws Exception {
        try {
            return Node.class.getConstructor(Environment.class).newInstance(env);
        } catch (NoSuchMethodException nine) {
            Class<?> loader = Class.forName("org.elasticsearch.plugins.PluginsLoader");
            Object modules = loader.getMethod("loadModulesBundles", Path.class).invoke(null, Environment.class.getMethod("modulesDir").invoke(env));
            Object plugins = loader.getMethod("loadPluginsBundles", Path.class).invoke(null, Environment.class.getMethod("pluginsDir").invoke(env));
            Object plugin = loader.getMethod("createPluginsLoader", java.util.Set.class, java.util.Set.class, Map.class)
                .invoke(null, modules, plugins, Map.of());
            return Node.class.getConstructor(Environment.class, loader).newInstance(env, plugin);
        }
    }

    public static void main(String[] args) throws Exception {
        LogConfigurator.configureESLogging();  // the distribution's bootstrap does this before anything logs
        Path home = Path.of(args[0]).toAbsolutePath();
        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "elk-pipeline-local-es")
            .put("node.name", "node-1")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", args[1])
            .put("transport.port", args[2])
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .build();
        Environment env = InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), null, () -> "node-1");
        Node node = newNode(env);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }));
        node.start();
        System.out.println("elasticsearch started on 127.0.0.1:" + args[1]);
        stopped.await();
    }
}
