import { useEffect, useState } from "react";
import { useKV } from "@github/spark/hooks";
import { collection } from "@github/spark/db";
import { z } from "zod";

const Todo = z.object({ title: z.string() });
const todos = collection(Todo, "todos");

type SparkUser = { login: string; id: string; isOwner: boolean } | null;

export default function App() {
  const [note, setNote] = useKV<string>("note", "");
  const [user, setUser] = useState<SparkUser | undefined>(undefined);
  const [items, setItems] = useState<{ _id: string; title: string }[]>([]);
  const [title, setTitle] = useState("");
  const [answer, setAnswer] = useState("");
  const [keys, setKeys] = useState<string[] | null>(null);

  useEffect(() => {
    window.spark.user().then((u: SparkUser) => setUser(u));
  }, []);

  const refresh = async () => setItems((await todos.getAll()) as { _id: string; title: string }[]);

  return (
    <main>
      <p data-testid="user">{user === undefined ? "loading" : user ? `signed in as ${user.login}` : "anonymous"}</p>
      <textarea data-testid="note" value={note ?? ""} onChange={(e) => setNote(e.target.value)} />
      <section>
        <input data-testid="todo-title" value={title} onChange={(e) => setTitle(e.target.value)} />
        <button data-testid="todo-add" onClick={async () => { await todos.insert({ title }); setTitle(""); await refresh(); }}>
          Add
        </button>
        <button data-testid="todo-refresh" onClick={refresh}>Refresh</button>
        <ul data-testid="todos">{items.map((t) => <li key={t._id}>{t.title}</li>)}</ul>
      </section>
      <section>
        <button data-testid="ask" onClick={async () => {
          try { setAnswer(await window.spark.llm(window.spark.llmPrompt`Say hello to ${user?.login ?? "you"}`)); }
          catch (e) { setAnswer(`error: ${e}`); }
        }}>Ask</button>
        <p data-testid="answer">{answer}</p>
      </section>
      <section>
        <button data-testid="keys" onClick={async () => setKeys(await window.spark.kv.keys())}>Keys</button>
        <p data-testid="key-list">{keys === null ? "" : JSON.stringify(keys)}</p>
      </section>
    </main>
  );
}
